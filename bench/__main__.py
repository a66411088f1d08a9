"""``python -m bench [--quick] [SCENARIO ...]`` runs the scenarios (all by default), writes
bench/results/<scenario>.json for each and regenerates the table in docs/performance.md.

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"'report', or any of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter runs (about a third of the time)"
    )
    args = parser.parse_args(argv)
    if args.scenarios == ["report"]:
        print(report.write())
        return 0
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    began = time.monotonic()
    for name in args.scenarios or SCENARIOS:
        module = importlib.import_module(f"bench.{name}")
        log(f"== {name}{' (quick)' if args.quick else ''}")
        machine = machine_info()
        started = time.monotonic()
        figures = module.run(args.quick)
        path = write_result(name, args.quick, machine, started, figures)
        print(f"{name}: {json.dumps(figures.get('targets', {}))}  ({path})", flush=True)
    print(report.write())
    log(f"bench finished in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
