"""Plain nats-py with pydantic: what a Python service without a framework would write.

- publish-awaited: `js.publish` one at a time, each awaiting its ack.
- publish-pipelined: nats-py's own `js.publish_async`, `--window` publishes in flight (its
  semaphore, `publish_async_max_pending`), every ack checked at the end.
- consume: a durable pull subscription, `fetch(--batch)` in a loop; each message is parsed and
  validated into the pydantic model, then acked.

Publishes send the JSON payload and a `Nats-Msg-Id` (JetStream de-duplication), nothing else.
"""

import asyncio

import nats
from nats.errors import TimeoutError as NatsTimeout

from common import Meter, arguments, event
from models import OrderPlaced

PEER = "nats-py"


async def main() -> None:
    args = arguments(PEER)
    nc = await nats.connect(args.url)
    js = nc.jetstream(publish_async_max_pending=max(args.window, 1))
    model = event(args)
    n = args.count
    if args.scenario == "publish-awaited":
        meter = Meter()
        for i in range(n):
            payload = model.model_dump_json().encode()
            await js.publish(
                args.subject, payload, headers={"Nats-Msg-Id": f"py-{args.run}-{i}"}
            )
        meter.report(PEER, args.scenario, n)
    elif args.scenario == "publish-pipelined":
        meter = Meter()
        futures = []
        for i in range(n):
            payload = model.model_dump_json().encode()
            futures.append(
                await js.publish_async(
                    args.subject, payload, headers={"Nats-Msg-Id": f"py-{args.run}-{i}"}
                )
            )
        await js.publish_async_completed()
        for f in futures:
            f.result()  # raises if the server refused one
        meter.report(PEER, args.scenario, n, window=args.window)
    else:
        batch = args.batch or 256
        # Created (or bound) before the clock starts, as on eventhub's side.
        sub = await js.pull_subscribe(args.subject, durable=args.durable, stream=args.stream)
        meter = Meter()
        done = 0
        while done < n:
            try:
                msgs = await sub.fetch(batch=min(batch, n - done), timeout=5)
            except NatsTimeout:
                continue
            for msg in msgs:
                OrderPlaced.model_validate_json(msg.data)
                await msg.ack()
                done += 1
        meter.report(PEER, args.scenario, n, batch=batch)
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
