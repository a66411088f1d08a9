"""An upload staging that also keeps a local copy of the file, to read its duration.

The blob store may be S3, which PyAV cannot seek in; the copy is a spooled temporary file
(in memory up to SPOOL_MEMORY bytes, on disk beyond), read once and closed with the request.
"""

from __future__ import annotations

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
        self._copy.write(chunk)
        await self._upload.write(chunk)

    async def commit(self) -> None:
        await self._upload.commit()

    async def abort(self) -> None:
        await self._upload.abort()


class CopyingStaging(Staging):
    """:class:`Staging` whose file part is also copied into :attr:`copy`."""

    def __init__(self, blobs: BlobStore, name: str) -> None:
        super().__init__(blobs, name)
        self.copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)

    def start(self) -> BlobUpload:
        upload = _Tee(self.blobs.upload(self.name), self.copy)
        self.uploads.append(upload)
        return upload

    async def abort(self) -> None:
        await super().abort()
        self.copy.close()
