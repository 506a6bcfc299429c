"""Validated settings for agenttop's commands (pydantic models shared by the CLI and tests)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_GRPC = "127.0.0.1:4317"


def default_db_path() -> Path:
    return platformdirs.user_data_path("agenttop") / "agenttop.db"


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or a bare ``PORT`` (loopback) -> (host, port)."""
    value = value.strip()
    if value.isdigit():
        host, port_text = "127.0.0.1", value
    elif value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{value!r} is not [IPV6]:PORT")
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{value!r} is not HOST:PORT (for example 127.0.0.1:4317)")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port in {value!r} must be a number from 0 to 65535")
    return host, int(port_text)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> int:
    """``90s``, ``15m``, ``2h``, ``7d`` (or plain seconds) -> seconds."""
    text = value.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"{value!r} is not a duration such as 90s, 15m, 2h or 7d")
    return int(number) * _UNITS[unit]


def format_duration(seconds: int) -> str:
    """The shortest exact spelling: 90 -> 90s, 900 -> 15m, 3600 -> 1h."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_address(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


class ServeSettings(BaseModel):
    """What ``agenttop serve`` needs to run."""

    model_config = ConfigDict(frozen=True)

    db: Path = Field(default_factory=default_db_path)
    grpc: str = DEFAULT_GRPC
    max_message_mb: int = Field(default=16, ge=1, le=2047)
    queue_spans: int = Field(default=50_000, ge=1)
    sync: Literal["full", "normal"] = "full"
    decoders: int | None = Field(default=None, ge=1, le=64)  # None: by the number of cores
    keep_pii: bool = False  # store values as received instead of redacting PII
    max_value_kb: int = Field(default=64, ge=1, le=1024 * 1024)  # longer strings: truncated
    rules: Path | None = None  # alert rules file; None: the shipped defaults
    alert_interval_s: float = Field(default=5.0, gt=0, le=3600)
    # Security (agenttop/otlp/grpc_server.py): a bearer token every call must carry, and TLS.
    token: SecretStr | None = None  # SecretStr: never shown by repr() or in errors
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate it signed

    @field_validator("token")
    @classmethod
    def _nonempty_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServeSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return self

    @field_validator("grpc")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return format_address(*parse_address(value))

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024
