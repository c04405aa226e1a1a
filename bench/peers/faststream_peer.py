"""A FastStream service on its NATS JetStream broker, with pydantic models.

- publish-awaited: a publisher bound to the stream (`broker.publisher(subject, stream=…)`):
  each `publish` awaits JetStream's ack.
- publish-pipelined: FastStream has no pipelined or asynchronous publish for NATS (its
  producer awaits each ack), so this runs `--window` publishes concurrently as asyncio tasks,
  the way a FastStream user would overlap them.
- consume: a subscriber with a durable pull consumer (`pull_sub=PullSub(batch_size=--batch)`),
  whose handler takes the pydantic model: FastStream decodes and validates every message into it
  and acks after the handler returns (its default ack policy).

FastStream adds its own headers (`content-type`, `correlation_id`) to what it publishes.
"""

import asyncio

import nats
from faststream.nats import JStream, NatsBroker, PullSub

from common import Meter, arguments, event
from models import OrderPlaced

PEER = "FastStream"


async def main() -> None:
    args = arguments(PEER)
    # The bench provisions the stream; FastStream must not declare (change) it.
    stream = JStream(args.stream, declare=False)
    # No log line per message: FastStream at its fastest, as a tuned service runs it.
    broker = NatsBroker(args.url, logger=None)
    model = event(args)
    n = args.count
    if args.scenario in ("publish-awaited", "publish-pipelined"):
        publisher = broker.publisher(args.subject, stream=stream)
        await broker.start()
        if args.scenario == "publish-awaited":
            meter = Meter()
            for _ in range(n):
                await publisher.publish(model)
            meter.report(PEER, args.scenario, n)
        else:
            meter = Meter()
            pending: set[asyncio.Task] = set()
            for _ in range(n):
                if len(pending) >= args.window:
                    finished, pending = await asyncio.wait(
                        pending, return_when=asyncio.FIRST_COMPLETED
                    )
                    for t in finished:
                        t.result()
                pending.add(asyncio.create_task(publisher.publish(model)))
            for t in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(t, BaseException):
                    raise t
            meter.report(PEER, args.scenario, n, window=args.window)
        await broker.stop()
        return

    batch = args.batch or 100
    done = asyncio.Event()
    count = 0

    @broker.subscriber(
        args.subject,
        stream=stream,
        durable=args.durable,
        pull_sub=PullSub(batch_size=batch),
    )
    async def handle(body: OrderPlaced) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    # The durable is created before the clock starts, as on eventhub's side; FastStream then
    # binds to it.
    nc = await nats.connect(args.url)
    await nc.jetstream().pull_subscribe(args.subject, durable=args.durable, stream=args.stream)
    await nc.close()
    meter = Meter()
    await broker.start()
    await done.wait()
    meter.report(PEER, args.scenario, n, batch=batch)
    await broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
