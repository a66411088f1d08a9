"""``python -m devnet`` (what ``make run`` runs): the whole stack in the foreground.

Ctrl-C stops every process it started. With REDIS_URL set it uses that Redis instead of
starting the embedded one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from devnet.stack import Ports, Service, Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet", description=__doc__)
    parser.add_argument("--var", default="var", help="state directory (default: var)")
    parser.add_argument(
        "--logs", action="store_true", help="print service logs here instead of var/logs/"
    )
    args = parser.parse_args(argv)

    ports = Ports()
    if os.environ.get("REDIS_PORT"):
        ports.redis = int(os.environ["REDIS_PORT"])
    stack = Stack(
        Path(args.var),
        ports,
        redis_url=os.environ.get("REDIS_URL") or None,
        log_to_files=not args.logs,
    )

    def announce(service: Service) -> None:
        where = f"127.0.0.1:{service.port}"
        print(f"ready  {service.name:<16} {where}", flush=True)

    # Installed explicitly: a shell starts background jobs with SIGINT ignored, and
    # SIGTERM should stop the children just as Ctrl-C does.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    print("starting the local stack (simulated miners and WhisperX: devnet/)", flush=True)
    try:
        stack.start(announce=announce)
        print(
            f"\nGateway API   http://127.0.0.1:{ports.gateway}/api/v1/health"
            f"\nAPI docs      http://127.0.0.1:{ports.gateway}/api/v1/docs"
            f"\nDashboard     http://127.0.0.1:{ports.gateway}/dashboard"
            f"\nLoad balancer http://127.0.0.1:{ports.lb}/health"
            f"\nValidator     http://127.0.0.1:{ports.validator}/health"
            f"\nLogs          {stack.var / 'logs'}\nCtrl-C stops everything.\n",
            flush=True,
        )
        while True:
            for service in stack.services.values():
                if service.process is not None and service.process.poll() is not None:
                    print(
                        f"{service.name} exited with status {service.process.returncode}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
