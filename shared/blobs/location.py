"""BLOB_STORE values: ``file:///abs/path``, a relative path, or ``s3://bucket/prefix``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from marshmallow import ValidationError, fields

#: S3 bucket naming rules (3 to 63 characters; lower case, digits, dots and hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class Location:
    """Where blobs go: a directory (``backend == "file"``) or a bucket and key prefix."""

    backend: str
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""


def parse_location(value: str, cwd: Path | None = None) -> Location:
    """Parse a BLOB_STORE value; relative paths are taken from ``cwd`` (default: the
    working directory). Raises ValueError with a one-line reason."""
    value = value.strip()
    if not value:
        raise ValueError("empty")
    if "://" not in value:
        return Location("file", ((cwd or Path.cwd()) / value).resolve())
    url = urlsplit(value)
    if url.scheme == "file":
        if url.netloc not in ("", "localhost") or not url.path.startswith("/"):
            raise ValueError("a file URL is file:///absolute/path")
        return Location("file", Path(unquote(url.path)).resolve())
    if url.scheme == "s3":
        if not _BUCKET.fullmatch(url.netloc) or ".." in url.netloc:
            raise ValueError(f"{url.netloc!r} is not an S3 bucket name")
        if url.query or url.fragment:
            raise ValueError("an S3 location has no query or fragment")
        prefix = url.path.strip("/")
        return Location("s3", bucket=url.netloc, prefix=f"{prefix}/" if prefix else "")
    raise ValueError(f"unsupported scheme {url.scheme!r}: use a path, file:/// or s3://")


class LocationField(fields.String):
    """A BLOB_STORE value, checked at load time and kept as given."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_location(text)
        except ValueError as exc:
            raise ValidationError(
                f"a directory, file:///absolute/path or s3://bucket/prefix ({exc})"
            ) from None
        return text
