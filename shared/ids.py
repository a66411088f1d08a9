"""Random (version 4) UUIDs, as :func:`uuid.uuid4` makes them, for less CPU per id.

``uuid.uuid4()`` asks the OS for 16 bytes (one system call) and builds a UUID object in
Python for every id; the gateway makes two per submission (task id, request id). Here the
OS randomness is fetched 4 KiB at a time and formatted directly. The bytes come from the
same source (``os.urandom``); a forked child starts with an empty buffer, so parent and
child never hand out the same ids.
"""

from __future__ import annotations

import os
import threading

_BATCH = 4096  # bytes: 256 ids per system call
_lock = threading.Lock()
_buffer = b""
_offset = 0


def _reset() -> None:
    global _buffer, _offset
    _buffer, _offset = b"", 0


os.register_at_fork(after_in_child=_reset)


def uuid4_hex() -> str:
    """32 lowercase hex digits, like ``uuid.uuid4().hex``."""
    global _buffer, _offset
    with _lock:
        if _offset >= len(_buffer):
            _buffer, _offset = os.urandom(_BATCH), 0
        raw = bytearray(_buffer[_offset : _offset + 16])
        _offset += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def uuid4_str() -> str:
    """The canonical 8-4-4-4-12 form, like ``str(uuid.uuid4())``."""
    h = uuid4_hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
