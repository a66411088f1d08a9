"""The blob store: audio inputs and large outputs live here, not in Redis memory.

``open_blob_store(settings)`` returns the backend BLOB_STORE names: a directory
(:mod:`shared.blobs.files`) or an S3 bucket (:mod:`shared.blobs.s3`). Both implement
:class:`BlobStore`; services use nothing else.
"""

from __future__ import annotations

from shared.blobs.base import (
    CHUNK_BYTES,
    INCOMING,
    Blob,
    BlobError,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobUnavailable,
    BlobUpload,
)
from shared.blobs.location import Location, parse_location
from shared.blobs.settings import BlobSettings, RetentionSettings

__all__ = [
    "CHUNK_BYTES",
    "INCOMING",
    "Blob",
    "BlobError",
    "BlobInfo",
    "BlobNotFound",
    "BlobSettings",
    "BlobStore",
    "BlobUnavailable",
    "BlobUpload",
    "Location",
    "RetentionSettings",
    "open_blob_store",
    "parse_location",
]


def open_blob_store(settings: BlobSettings) -> BlobStore:
    """The store BLOB_STORE names (not started: call ``await store.start()``)."""
    location = parse_location(settings.blob_store)
    if location.backend == "file":
        from shared.blobs.files import FileBlobStore

        assert location.path is not None
        return FileBlobStore(location.path)
    # Imported only here: the lb image, and file-backend users, need no botocore.
    from shared.blobs.s3 import S3BlobStore

    return S3BlobStore(
        location.bucket,
        location.prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.aws_region,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=settings.aws_secret_access_key,
        timeout=settings.blob_timeout,
        spool_dir=settings.blob_spool_dir,
    )
