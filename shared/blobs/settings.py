"""Blob store settings, read by the gateway and the validator alike (they must agree)."""

from __future__ import annotations

import dataclasses

from marshmallow import fields, validate

from shared.blobs.location import LocationField, parse_location
from shared.settings import SettingsError, setting


@dataclasses.dataclass(frozen=True)
class BlobSettings:
    """Where audio inputs and outputs live, and how to reach an S3 store."""

    blob_store: str = setting(
        LocationField(),
        "var/blobs",
        "where inputs and outputs are kept: a directory (relative path or file:///abs/path) "
        "or s3://bucket/prefix",
    )
    s3_endpoint_url: str | None = setting(
        fields.String(validate=validate.URL(schemes={"http", "https"}, require_tld=False)),
        None,
        "S3-compatible endpoint (MinIO, Ceph RGW, R2, GCS); unset for AWS S3",
    )
    aws_access_key_id: str | None = setting(
        fields.String(), None, "S3 access key; unset: the AWS default chain (role, profile)"
    )
    aws_secret_access_key: str | None = setting(
        fields.String(), None, "S3 secret key; unset: the AWS default chain (role, profile)"
    )
    aws_region: str | None = setting(
        fields.String(), None, "S3 region (AWS: the bucket's region); unset: us-east-1"
    )
    blob_timeout: float = setting(
        fields.Float(validate=validate.Range(min=0.1, max=3600)),
        60.0,
        "seconds one blob store request may take (per S3 call, after retries)",
    )
    blob_spool_dir: str | None = setting(
        fields.String(),
        None,
        "directory where S3 uploads are spooled while they arrive; unset: the system "
        "temporary directory",
    )

    def check_blob_store(self) -> None:
        """An S3-compatible store (S3_ENDPOINT_URL set) has no AWS default credential
        chain to fall back on: both keys are needed. Called by the services' check()."""
        if parse_location(self.blob_store).backend != "s3" or not self.s3_endpoint_url:
            return
        for name in ("aws_access_key_id", "aws_secret_access_key"):
            if not getattr(self, name):
                raise SettingsError(
                    f"{name.upper()}: required with S3_ENDPOINT_URL (an S3-compatible "
                    "store has no default credential chain)"
                )


@dataclasses.dataclass(frozen=True)
class RetentionSettings:
    """How long blobs outlive their task's final status (the validator applies them)."""

    input_retention: int = setting(
        fields.Integer(validate=validate.Range(min=0)),
        0,
        "seconds a task's input is kept after it reaches a final status (0: deleted then)",
    )
    blob_sweep_interval: float = setting(
        fields.Float(validate=validate.Range(min=0.1)),
        60.0,
        "seconds between deletions of due blobs (inputs past INPUT_RETENTION, outputs "
        "past RESULT_TTL)",
    )
    blob_orphan_age: float = setting(
        fields.Float(validate=validate.Range(min=1)),
        3600.0,
        "seconds before a blob whose task record is gone is removed by the orphan sweep",
    )
