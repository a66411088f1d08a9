"""Load-balancer settings: the seed's variables (PORT, HEALTH_CHECK_INTERVAL, REQUEST_TIMEOUT,
INSTANCE_1_URL ... INSTANCE_10_URL) plus the timeouts and threshold the health rules need."""

from __future__ import annotations

import dataclasses

from marshmallow import fields, validate

from shared.settings import CommonSettings, SettingsError, port_field, positive_int_field, setting

MAX_INSTANCES = 10
NO_INSTANCES = "At least one instance endpoint must be configured"
_NUMBERS = range(1, MAX_INSTANCES + 1)


def _seconds() -> fields.Float:
    return fields.Float(validate=validate.Range(min=0, min_inclusive=False))


def _instance_url(number: int) -> str | None:
    field = fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        error_messages={"invalid": "not an http:// or https:// URL"},
    )
    return setting(field, None, f"base URL of WhisperX instance {number} (optional)")


@dataclasses.dataclass(frozen=True)
class LbSettings(CommonSettings):
    """Everything ``python -m services.lb`` reads from the environment (and .env)."""

    host: str = setting(fields.String(), "0.0.0.0", "interface to listen on")
    port: int = setting(port_field(), 8080, "TCP port to listen on")
    health_check_interval: float = setting(
        _seconds(), 30.0, "seconds between two health checks of one instance (±10% jitter)"
    )
    health_check_timeout: float = setting(
        _seconds(), 5.0, "seconds an instance's GET /health may take before the check fails"
    )
    unhealthy_threshold: int = setting(
        positive_int_field(), 3, "consecutive failed checks that take an instance out of rotation"
    )
    request_timeout: float = setting(
        _seconds(), 3600.0, "seconds one proxied request may take in total; then 504"
    )
    connect_timeout: float = setting(
        _seconds(), 10.0, "seconds to open a connection to an instance before trying the next"
    )
    instance_1_url: str | None = _instance_url(1)
    instance_2_url: str | None = _instance_url(2)
    instance_3_url: str | None = _instance_url(3)
    instance_4_url: str | None = _instance_url(4)
    instance_5_url: str | None = _instance_url(5)
    instance_6_url: str | None = _instance_url(6)
    instance_7_url: str | None = _instance_url(7)
    instance_8_url: str | None = _instance_url(8)
    instance_9_url: str | None = _instance_url(9)
    instance_10_url: str | None = _instance_url(10)

    def configured_instances(self) -> list[tuple[str, str]]:
        """(variable name, base URL without trailing slash) for each INSTANCE_n_URL that is set."""
        pairs = ((f"INSTANCE_{n}_URL", getattr(self, f"instance_{n}_url")) for n in _NUMBERS)
        return [(name, url.rstrip("/")) for name, url in pairs if url]

    @property
    def instance_urls(self) -> list[str]:
        """Configured instance base URLs in variable order; gaps in the numbering are fine."""
        return [url for _, url in self.configured_instances()]

    def check(self) -> None:
        """Called by load_settings: the LB is useless without an instance to route to."""
        configured = self.configured_instances()
        if not configured:
            raise SettingsError(f"{NO_INSTANCES} (set INSTANCE_1_URL ... INSTANCE_10_URL)")
        seen: dict[str, str] = {}
        for name, url in configured:
            # The same instance listed twice would get twice its share of requests.
            if url in seen:
                raise SettingsError(f"{name}: same URL as {seen[url]} (got {url!r})")
            seen[url] = name
