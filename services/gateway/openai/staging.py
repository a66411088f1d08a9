"""An upload staging that also keeps a local copy of the file, to read its duration.

The blob store may be S3, which PyAV cannot seek in; the copy is a spooled temporary file
(in memory up to SPOOL_MEMORY bytes, beyond that on disk in BLOB_SPOOL_DIR, where S3
uploads spool too), read once, then closed. Disk writes run in a thread, off the loop.
"""

from __future__ import annotations

import asyncio
import tempfile

from services.gateway.uploads import Staging
from shared.blobs import BlobStore, BlobUpload

SPOOL_MEMORY = 1024 * 1024


class _Tee:
    """A blob upload that copies every chunk into ``copy``."""

    def __init__(self, upload: BlobUpload, copy: tempfile.SpooledTemporaryFile) -> None:
        self._upload = upload
        self._copy = copy

    @property
    def size(self) -> int:
        return self._upload.size

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._copy.tell() + len(chunk) > SPOOL_MEMORY:
            await asyncio.to_thread(self._copy.write, chunk)
        else:
            self._copy.write(chunk)
        await self._upload.write(chunk)

    async def commit(self) -> None:
        await self._upload.commit()

    async def abort(self) -> None:
        await self._upload.abort()


class CopyingStaging(Staging):
    """:class:`Staging` whose file part is also copied into :attr:`copy`."""

    def __init__(self, blobs: BlobStore, name: str, spool_dir: str | None = None) -> None:
        super().__init__(blobs, name)
        self.copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=spool_dir)

    def start(self) -> BlobUpload:
        upload = _Tee(self.blobs.upload(self.name), self.copy)
        self.uploads.append(upload)
        return upload

    async def abort(self) -> None:
        await super().abort()
        self.copy.close()
