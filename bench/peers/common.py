"""What the peers share: arguments, the clock and the one-line JSON report.

The bench (bench/src/peers.rs) runs a peer as
`python3 bench/peers/<peer>.py <scenario> --url … --subject … --stream … --count N [...]`
and reads one JSON object from its last line of stdout. Only the measured loop is timed: not
the interpreter's start, the imports or the connection.
"""

import argparse
import json
import resource
import sys
import time
from importlib.metadata import version

from models import OrderPlaced

SCENARIOS = ("publish-awaited", "publish-pipelined", "consume")


def arguments(peer: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=peer)
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--url", required=True)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--event", required=True, help="the event, as JSON")
    parser.add_argument("--window", type=int, default=4096, help="publishes in flight")
    parser.add_argument("--durable", default="", help="consumer name (consume)")
    parser.add_argument("--batch", type=int, default=0, help="messages per pull (consume)")
    parser.add_argument("--run", default="", help="makes this run's message ids unique")
    args = parser.parse_args()
    if args.scenario == "consume" and not args.durable:
        parser.error("consume needs --durable")
    return args


def event(args: argparse.Namespace) -> OrderPlaced:
    return OrderPlaced.model_validate_json(args.event)


class Meter:
    """Wall time and this process's CPU time over the measured loop."""

    def __init__(self) -> None:
        self.cpu = self._cpu()
        self.start = time.perf_counter()

    @staticmethod
    def _cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def report(self, peer: str, scenario: str, events: int, **extra: object) -> None:
        seconds = time.perf_counter() - self.start
        cpu = self._cpu() - self.cpu
        out = {
            "peer": peer,
            "scenario": scenario,
            "events": events,
            "seconds": seconds,
            "per_sec": events / seconds,
            "cpu_seconds": cpu,
            # ru_maxrss is in KiB on Linux: the peak of this whole process.
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "python": sys.version.split()[0],
            "versions": {p: version(p) for p in ("nats-py", "pydantic", "faststream")},
        }
        out.update(extra)
        print(json.dumps(out), flush=True)
