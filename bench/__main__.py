"""``python -m bench [--quick] [SCENARIO ...]`` runs the scenarios (all by default), writes
bench/results/<scenario>.json for each and regenerates the table in docs/performance.md
(``redis_cost`` runs only when named; its figures are in docs/scaling.md).

``python -m bench report`` only regenerates the table from the JSON files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from bench import report
from bench.common import log, machine_info, write_result

SCENARIOS = ("lb_stream", "lb_small", "lb_routing", "gateway_ingest", "pipeline")
#: Run only when named: redis_cost feeds docs/scaling.md, not docs/performance.md.
NAMED_ONLY = ("redis_cost",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"'report', or any of {', '.join(SCENARIOS + NAMED_ONLY)}"
        f" (default: {', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter runs (about a third of the time)"
    )
    args = parser.parse_args(argv)
    if args.scenarios == ["report"]:
        print(report.write())
        return 0
    unknown = [s for s in args.scenarios if s not in SCENARIOS + NAMED_ONLY]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    began = time.monotonic()
    chosen = args.scenarios or SCENARIOS
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        log(f"== {name}{' (quick)' if args.quick else ''}")
        machine = machine_info()
        started = time.monotonic()
        figures = module.run(args.quick)
        path = write_result(name, args.quick, machine, started, figures)
        summary = figures.get("summary", figures.get("targets", {}))
        print(f"{name}: {json.dumps(summary)}  ({path})", flush=True)
    if set(chosen) & set(SCENARIOS):  # a named-only run leaves docs/performance.md alone
        print(report.write())
    log(f"bench finished in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
