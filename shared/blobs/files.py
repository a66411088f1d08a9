"""The file backend: one file per blob under a directory (a local disk or a shared volume).

Uploads are written to ``<root>/.incoming/`` and renamed into place on commit, after an
fsync, so a blob is either whole under its name or absent, and an accepted task's input
survives a crash of the host. Disk calls run in worker threads: a slow disk never stalls
the event loop. The root is created at start; if it disappears later (an unmounted volume),
the store reports itself unavailable instead of quietly writing into a fresh directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from shared.blobs.base import CHUNK_BYTES, BlobInfo, BlobNotFound, BlobUnavailable
from shared.blobs.base import INCOMING as INCOMING_PREFIX
from shared.logging import get_logger

log = get_logger("blobs.files")

#: Directory (under the root) of uploads not yet committed; swept like orphans.
INCOMING = INCOMING_PREFIX.rstrip("/")


def _unavailable(exc: OSError) -> BlobUnavailable:
    return BlobUnavailable(f"{type(exc).__name__}: {exc.strerror or exc}")


class FileBlob:
    """An open blob file, read in a worker thread chunk by chunk."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.size = size

    async def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(self._handle.read, chunk_bytes):
                yield chunk
        except OSError as exc:
            raise _unavailable(exc) from None
        finally:
            await self.close()

    async def close(self) -> None:
        self._handle.close()


class FileUpload:
    """A file in ``.incoming`` that becomes the blob on :meth:`commit`."""

    def __init__(self, store: FileBlobStore, name: str) -> None:
        self._store = store
        self._final = store.path(name)
        self._temp = store.root / INCOMING / f"{secrets.token_hex(12)}.part"
        self._handle: BinaryIO | None = None
        self._done = False
        self.size = 0

    def _open(self) -> BinaryIO:
        self._store.check_root()
        self._temp.parent.mkdir(exist_ok=True)
        return self._temp.open("xb")

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        try:
            if self._handle is None:
                self._handle = await asyncio.to_thread(self._open)
            await asyncio.to_thread(self._handle.write, chunk)
        except OSError as exc:
            await self.abort()
            raise _unavailable(exc) from None
        self.size += len(chunk)

    def _finish(self) -> None:
        if self._handle is None:
            self._handle = self._open()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._store.make_parent(self._final)
        os.replace(self._temp, self._final)

    async def commit(self) -> None:
        try:
            await asyncio.to_thread(self._finish)
        except OSError as exc:
            await self.abort()
            raise _unavailable(exc) from None
        self._done = True

    def _discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            await asyncio.to_thread(self._discard)
        except OSError as exc:
            # The orphan sweep removes what is left once it is old enough.
            log.warning("blob_abort_failed", error=str(exc))


class FileBlobStore:
    """Blobs as files under ``root``; a name's slashes are subdirectories."""

    backend = "file"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not a blob name: {name!r}")
        return self.root.joinpath(*parts)

    def check_root(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(2, f"blob store root {self.root} is missing")

    def make_parent(self, path: Path) -> None:
        self.check_root()
        path.parent.mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("blob_store_unavailable_at_start", location=self.location, error=str(exc))

    async def close(self) -> None:
        return None

    def _probe(self) -> None:
        self.check_root()
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(13, f"blob store root {self.root} is not writable")

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self._probe)
        except OSError as exc:
            raise _unavailable(exc) from None

    def _put(self, name: str, data: bytes | bytearray) -> None:
        final = self.path(name)
        temp = self.root / INCOMING / f"{secrets.token_hex(12)}.part"
        self.check_root()
        temp.parent.mkdir(exist_ok=True)
        try:
            with temp.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self.make_parent(final)
            os.replace(temp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    async def put(self, name: str, data: bytes | bytearray) -> None:
        try:
            await asyncio.to_thread(self._put, name, data)
        except OSError as exc:
            raise _unavailable(exc) from None

    def upload(self, name: str) -> FileUpload:
        return FileUpload(self, name)

    def _open(self, name: str) -> FileBlob:
        path = self.path(name)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            self.check_root()
            raise BlobNotFound(name) from None
        return FileBlob(handle, os.fstat(handle.fileno()).st_size)

    async def open(self, name: str) -> FileBlob:
        try:
            return await asyncio.to_thread(self._open, name)
        except OSError as exc:
            raise _unavailable(exc) from None

    async def read(self, name: str) -> bytes:
        blob = await self.open(name)
        return b"".join([chunk async for chunk in blob.chunks()])

    def _exists(self, name: str) -> bool:
        if self.path(name).is_file():
            return True
        self.check_root()
        return False

    async def exists(self, name: str) -> bool:
        try:
            return await asyncio.to_thread(self._exists, name)
        except OSError as exc:
            raise _unavailable(exc) from None

    def _delete(self, name: str) -> None:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            self.check_root()

    async def delete(self, name: str) -> None:
        try:
            await asyncio.to_thread(self._delete, name)
        except OSError as exc:
            raise _unavailable(exc) from None

    def _scan(self, directory: Path, prefix: str) -> tuple[list[BlobInfo], list[Path]]:
        """One directory's blobs (names relative to the root) and subdirectories."""
        files, subdirs = [], []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            self.check_root()
            return [], []
        for entry in entries:
            name = Path(entry.path).relative_to(self.root).as_posix()
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(Path(entry.path))
            elif name.startswith(prefix):
                st = entry.stat(follow_symlinks=False)
                files.append(BlobInfo(name, st.st_size, st.st_mtime))
        return files, subdirs

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        # Walk only the directories the prefix can reach, one directory per thread call,
        # so a large store is never held in memory as one listing.
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        pending = [self.root / head if head else self.root]
        while pending:
            directory = pending.pop()
            try:
                files, subdirs = await asyncio.to_thread(self._scan, directory, prefix)
            except OSError as exc:
                raise _unavailable(exc) from None
            for info in files:
                yield info
            pending.extend(subdirs)
