"""Gateway settings: seed defaults, the language list, and one-line errors."""

from __future__ import annotations

import pytest

from services.gateway.settings import WHISPER_LANGUAGES, GatewaySettings
from shared.settings import SettingsError, load_settings, variables


def test_defaults():
    s = load_settings(GatewaySettings, {})
    assert (s.host, s.port) == ("0.0.0.0", 8000)
    assert s.max_upload_bytes == 50 * 1024 * 1024
    assert (s.tts_max_chars, s.summarization_max_chars) == (10_000, 50_000)
    assert s.allowed_languages == WHISPER_LANGUAGES and len(WHISPER_LANGUAGES) == 100
    assert s.default_language == "en" and s.result_ttl == 7 * 24 * 3600


def test_language_list_is_normalised():
    s = load_settings(GatewaySettings, {"ALLOWED_LANGUAGES": " EN, fr,,en ,de "})
    assert s.allowed_languages == ("en", "fr", "de")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ALLOWED_LANGUAGES": ","}, "ALLOWED_LANGUAGES"),
        ({"ALLOWED_LANGUAGES": "en,e-n"}, "ALLOWED_LANGUAGES"),
        ({"ALLOWED_LANGUAGES": "fr", "DEFAULT_LANGUAGE": "en"}, "DEFAULT_LANGUAGE"),
        ({"MAX_UPLOAD_BYTES": "0"}, "MAX_UPLOAD_BYTES"),
        ({"PORT": "http"}, "PORT"),
        ({"HEALTH_TIMEOUT": "0"}, "HEALTH_TIMEOUT"),
    ],
)
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=f"^{name}:"):
        load_settings(GatewaySettings, env)


def test_every_variable_is_documented():
    for name, field in variables(GatewaySettings).items():
        assert field.metadata["doc"], name
