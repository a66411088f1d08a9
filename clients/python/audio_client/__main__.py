"""``python -m audio_client``: the same as the ``audio-client`` command."""

import sys

from audio_client.cli import main

sys.exit(main())
