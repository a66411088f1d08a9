"""``python -m services.gateway``: serve one process, or manage API keys (``keys ...``).

For several worker processes on one host, run gunicorn instead (see gunicorn_conf.py).
"""

from __future__ import annotations

import sys

from services.gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
