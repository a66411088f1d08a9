"""Gateway settings: where to listen, upload and text limits, accepted languages, and the
protections in front of them (API keys, rate limits, proxies, CORS, idempotency, timeouts)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from marshmallow import ValidationError, fields, validate

from services.gateway.clientip import NetworkList
from services.gateway.rates import DEFAULT_LIMITS, Limit, LimitsField
from shared.blobs.settings import BlobSettings
from shared.settings import (
    RedisSettings,
    SettingsError,
    port_field,
    positive_int_field,
    setting,
)

#: Whisper's language codes (openai/whisper ``tokenizer.LANGUAGES``): ISO 639-1 where one
#: exists; ``haw`` and ``yue`` have none, and ``jw`` is Whisper's spelling of Javanese.
WHISPER_LANGUAGES: tuple[str, ...] = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar",
    "sv", "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu",
    "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa",
    "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn",
    "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc",
    "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn",
    "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw",
    "su", "yue",
)  # fmt: skip

MIB = 1024 * 1024


class CodeList(fields.Field):
    """A comma-separated list of lower-case language codes, loaded as a tuple."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, str):
            raise ValidationError("a comma-separated list of language codes")
        codes = tuple(dict.fromkeys(c.strip().lower() for c in value.split(",") if c.strip()))
        if not codes or not all(c.isascii() and c.isalpha() and len(c) <= 8 for c in codes):
            raise ValidationError("a comma-separated list of language codes such as en,es,fr")
        return codes


class NameList(fields.Field):
    """A comma-separated list of HTTP tokens (methods, header names), loaded as a tuple."""

    def __init__(self, *, upper: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.upper = upper

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, str):
            raise ValidationError("a comma-separated list")
        names = [n.strip().upper() if self.upper else n.strip() for n in value.split(",")]
        names = list(dict.fromkeys(n for n in names if n))
        if not all(re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", n) for n in names):
            raise ValidationError("names such as GET,POST or Authorization,Content-Type")
        return tuple(names)


class OriginList(fields.Field):
    """CORS origins: ``scheme://host[:port]`` entries, or ``*`` for any origin."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, str):
            raise ValidationError("a comma-separated list of origins")
        origins = tuple(dict.fromkeys(o.strip().rstrip("/") for o in value.split(",") if o.strip()))
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValidationError(
                    f"{origin!r} is not an origin such as https://app.example.com"
                )
        return origins


def _seconds(max_seconds: float = 60) -> fields.Float:
    return fields.Float(validate=validate.Range(min=0.1, max=max_seconds))


@dataclasses.dataclass(frozen=True)
class GatewaySettings(RedisSettings, BlobSettings):
    """Everything ``python -m services.gateway`` reads from the environment."""

    host: str = setting(fields.String(), "0.0.0.0", "interface to listen on")
    port: int = setting(port_field(), 8000, "TCP port to listen on")
    max_upload_bytes: int = setting(
        positive_int_field(), 50 * MIB, "largest audio_file accepted (bytes); larger gets 413"
    )
    max_json_bytes: int = setting(
        positive_int_field(), 1 * MIB, "largest JSON request body (bytes); larger gets 413"
    )
    tts_max_chars: int = setting(positive_int_field(), 10_000, "longest TTS text (characters)")
    summarization_max_chars: int = setting(
        positive_int_field(), 50_000, "longest summarization text (characters)"
    )
    allowed_languages: tuple[str, ...] = setting(
        CodeList(),
        WHISPER_LANGUAGES,
        "comma-separated source_language codes accepted; default: Whisper's languages",
    )
    default_language: str = setting(
        fields.String(validate=validate.Length(min=1)),
        "en",
        "source_language used when a submission leaves it out",
    )
    eta_samples: int = setting(
        positive_int_field(), 50, "recent measured durations averaged for estimates"
    )
    health_timeout: float = setting(
        _seconds(), 2.0, "seconds health, /metrics and the start-up check wait for Redis"
    )
    workers: int = setting(
        positive_int_field(), 4, "worker processes when run under gunicorn (gunicorn_conf.py)"
    )
    api_keys_required: bool = setting(
        fields.Boolean(),
        False,
        "true: submissions and task reads need an API key (401 without); "
        "false: anonymous callers are identified by their address",
    )
    rate_limits: tuple[Limit, ...] = setting(
        LimitsField(),
        DEFAULT_LIMITS,
        "token buckets per identity for the endpoint groups submit, read and meta, "
        "e.g. submit=60/min,read=600/min; off disables one (docs/api.md)",
    )
    trusted_proxies: tuple = setting(
        NetworkList(),
        (),
        "comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed",
    )
    cors_allow_origins: tuple[str, ...] = setting(
        OriginList(),
        (),
        "origins browsers may call the API from (https://app.example.com, or *); "
        "none by default: no CORS",
    )
    cors_allow_methods: tuple[str, ...] = setting(
        NameList(upper=True),
        ("GET", "POST", "DELETE"),
        "methods allowed to CORS origins (DELETE: cancellation)",
    )
    cors_allow_headers: tuple[str, ...] = setting(
        NameList(),
        (
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "X-API-Key",
            "X-Priority",
            "X-Request-ID",
            "Last-Event-ID",
        ),
        "request headers allowed to CORS origins (Last-Event-ID: resuming an event stream)",
    )
    cors_max_age: int = setting(
        fields.Integer(validate=validate.Range(min=0, max=86400)),
        600,
        "seconds browsers may cache a CORS preflight answer",
    )
    idempotency_ttl: int = setting(
        positive_int_field(), 86400, "seconds an Idempotency-Key and its answer are kept"
    )
    body_timeout: float = setting(
        _seconds(3600), 120.0, "seconds a client has to send a whole request body; slower gets 408"
    )
    idle_timeout: float = setting(
        _seconds(3600),
        15.0,
        "seconds a connection may wait for a complete request head (first or next keep-alive "
        "request) before it is closed",
    )
    sync_wait: float = setting(
        _seconds(3600),
        120.0,
        "seconds an OpenAI-compatible /v1 call waits for its task to end; past that it "
        "answers 504 with the task's Location (docs/openai.md)",
    )
    queue_metrics_interval: float = setting(
        _seconds(),
        5.0,
        "seconds between reads of queue depth and oldest age for /metrics (docs/operations.md)",
    )

    def check(self) -> None:
        """Cross-field rules that one field's validator cannot see."""
        self.check_blob_store()
        if self.default_language not in self.allowed_languages:
            raise SettingsError(
                "DEFAULT_LANGUAGE: must be one of ALLOWED_LANGUAGES "
                f"(got {self.default_language!r})"
            )
