"""Typed settings read from the environment (and a .env file), validated once at start-up.

Each service declares a frozen dataclass whose fields are made with :func:`setting`. The
field name upper-cased is the environment variable; the marshmallow field validates and
converts it. :func:`load_settings` returns the dataclass or raises :class:`SettingsError`
with one line naming the variable and what it expected; :func:`load_or_exit` turns that
into a non-zero exit for ``python -m services.<name>``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values
from marshmallow import Schema, ValidationError, fields, validate

T = TypeVar("T")

ENVIRONMENTS = ("development", "production", "test")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line naming the variable."""


def setting(field: fields.Field, default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    """Declare a settings field: its marshmallow validator, default and one-line meaning."""
    return dataclasses.field(default=default, metadata={"field": field, "doc": doc})


def read_environment(dotenv_path: str | Path = ".env") -> dict[str, str]:
    """The process environment over a .env file in the working directory, if there is one."""
    merged: dict[str, str] = {}
    path = Path(dotenv_path)
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ)
    return merged


def variables(cls: type) -> dict[str, dataclasses.Field]:
    """Environment variable name -> dataclass field, for docs and deploy checks."""
    return {f.name.upper(): f for f in dataclasses.fields(cls) if "field" in f.metadata}


def load_settings(cls: type[T], env: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from ``env`` (default: environment + .env); empty values count as unset."""
    env = read_environment() if env is None else env
    known = variables(cls)
    schema = Schema.from_dict({name: f.metadata["field"] for name, f in known.items()})()
    raw = {name: env[name] for name in known if env.get(name, "") != ""}
    try:
        loaded = schema.load(raw)
    except ValidationError as exc:
        name, messages = sorted(exc.normalized_messages().items())[0]
        detail = messages[0] if isinstance(messages, list) else messages
        raise SettingsError(f"{name}: {detail} (got {raw.get(name)!r})") from None
    missing = [
        name
        for name, f in known.items()
        if name not in loaded
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SettingsError(f"{missing[0]}: required, not set")
    instance = cls(**{known[name].name: value for name, value in loaded.items()})
    check = getattr(instance, "check", None)
    if check is not None:
        check()
    return instance


def load_or_exit(cls: type[T], env: Mapping[str, str] | None = None) -> T:
    """:func:`load_settings`, exiting with status 2 and one line on stderr when it fails."""
    try:
        return load_settings(cls, env)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _port() -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=1, max=65535))


def _positive() -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=1))


class HostPortList(fields.Field):
    """``host:port,host:port,...`` (IPv6 hosts in brackets), loaded as a tuple of pairs."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, str):
            raise ValidationError("a comma-separated list of host:port")
        pairs = []
        for item in (i.strip() for i in value.split(",") if i.strip()):
            host, _, port = item.rpartition(":")
            host = host.removeprefix("[").removesuffix("]")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValidationError(f"{item!r} is not host:port, e.g. sentinel-0:26379")
            pairs.append((host, int(port)))
        if not pairs:
            raise ValidationError("a comma-separated list of host:port")
        return tuple(dict.fromkeys(pairs))


def _redis_url() -> fields.String:
    return fields.String(
        validate=validate.Regexp(
            r"^(redis|rediss|unix)://", error="a redis://, rediss:// or unix:// URL"
        )
    )


@dataclasses.dataclass(frozen=True)
class CommonSettings:
    """Settings every service shares: environment, logging."""

    environment: str = setting(
        fields.String(validate=validate.OneOf(ENVIRONMENTS)),
        "development",
        "development: console logs; production: JSON logs",
    )
    log_level: str = setting(
        fields.String(validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"])),
        "INFO",
        "minimum log level",
    )


@dataclasses.dataclass(frozen=True)
class RedisSettings(CommonSettings):
    """Common settings plus the Redis connection and task retention, for Redis users."""

    redis_host: str = setting(fields.String(), "localhost", "Redis host (when REDIS_URL unset)")
    redis_port: int = setting(_port(), 6379, "Redis port (when REDIS_URL unset)")
    redis_db: int = setting(fields.Integer(validate=validate.Range(min=0)), 0, "Redis database")
    redis_password: str | None = setting(
        fields.String(), None, "Redis password (of the master and replicas, with Sentinels too)"
    )
    redis_url: str | None = setting(
        _redis_url(), None, "full Redis URL (redis:// or rediss://); overrides REDIS_HOST/PORT"
    )
    redis_sentinels: tuple[tuple[str, int], ...] = setting(
        HostPortList(),
        (),
        "Sentinels host:port,host:port,...; when set they name the master (over REDIS_URL)",
    )
    redis_sentinel_master: str = setting(
        fields.String(validate=validate.Length(min=1)),
        "mymaster",
        "name of the master the Sentinels monitor",
    )
    redis_sentinel_password: str | None = setting(
        fields.String(), None, "password of the Sentinels themselves (REDIS_PASSWORD: the master's)"
    )
    redis_min_replicas_ack: int = setting(
        fields.Integer(validate=validate.Range(min=0)),
        0,
        "replicas that must confirm (Redis WAIT) a submission or a result before it counts",
    )
    redis_ack_timeout_ms: int = setting(
        _positive(),
        1000,
        "milliseconds to wait for REDIS_MIN_REPLICAS_ACK replicas; past it a submission gets 503",
    )
    result_ttl: int = setting(
        _positive(), 7 * 24 * 3600, "seconds finished tasks and their data are kept"
    )
    max_concurrent_tasks: int = setting(
        _positive(), 10, "tasks one validator replica works on at once"
    )
    task_timeout: int = setting(_positive(), 60, "seconds a miner has to answer one attempt")

    @property
    def redis_dsn(self) -> str:
        """The URL to connect with: REDIS_URL, else one built from host, port, db."""
        if self.redis_url:
            return self.redis_url
        auth = f":{self.redis_password}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"


port_field = _port
positive_int_field = _positive


@dataclasses.dataclass(frozen=True)
class ChainSettings:
    """Which Bittensor subnet and wallet to use (seed names and defaults)."""

    bt_netuid: int = setting(
        fields.Integer(validate=validate.Range(min=0)), 49, "subnet uid on the chain"
    )
    bt_network: str = setting(
        fields.String(validate=validate.Length(min=1)),
        "finney",
        "finney, test, local or a ws(s):// endpoint",
    )
    bt_wallet_name: str = setting(fields.String(), "default", "wallet (coldkey) name")
    bt_wallet_hotkey: str = setting(fields.String(), "default", "hotkey name within the wallet")
    bt_wallet_path: str = setting(fields.String(), "~/.bittensor/wallets", "wallets directory")
