"""Gateway settings: where to listen, upload and text limits, accepted languages."""

from __future__ import annotations

import dataclasses
from typing import Any

from marshmallow import ValidationError, fields, validate

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


def _seconds() -> fields.Float:
    return fields.Float(validate=validate.Range(min=0.1, max=60))


@dataclasses.dataclass(frozen=True)
class GatewaySettings(RedisSettings):
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

    def check(self) -> None:
        """Cross-field rules that one field's validator cannot see."""
        if self.default_language not in self.allowed_languages:
            raise SettingsError(
                "DEFAULT_LANGUAGE: must be one of ALLOWED_LANGUAGES "
                f"(got {self.default_language!r})"
            )
