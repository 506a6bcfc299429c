"""Validated settings for agenttop's commands (pydantic models shared by the CLI and tests)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_GRPC = "127.0.0.1:4317"
DEFAULT_HTTP = "127.0.0.1:4318"


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


def parse_retention(value: str) -> int | None:
    """``7d``, ``12h``... -> seconds; ``off`` or ``0`` -> None (keep everything)."""
    if value.strip().lower() in ("off", "0"):
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a duration such as 12h or 7d, or off") from None


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


# --- forwarding (agenttop/otlp/forward.py) -------------------------------------------------

FORWARD_PORTS = {"grpc": 4317, "grpcs": 443, "http": 80, "https": 443}
# Headers the transports set themselves: a user's value would break the call.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "te",
                              "host", "connection", "transfer-encoding", "user-agent"})
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class ForwardTarget:
    """Where to forward: ``scheme`` grpc, grpcs (OTLP/gRPC) or http, https (OTLP/HTTP)."""

    scheme: str
    host: str
    port: int
    prefix: str = ""  # OTLP/HTTP: the path before /v1/traces

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}{self.prefix}"


def parse_forward_url(url: str) -> ForwardTarget:
    """``grpc://HOST:PORT``, ``grpcs://...``, ``http://HOST:PORT[/prefix]``, ``https://...``.

    The port defaults to 4317 for grpc, 443 for grpcs and https, 80 for http. Raises
    ValueError with a one-line reason for anything else.
    """
    forms = "grpc://HOST:PORT, grpcs://HOST:PORT, http://HOST:PORT[/PREFIX] or https://..."
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{url!r} is not a valid URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in FORWARD_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not one of {forms}")
    if parts.username is not None or parts.password is not None:
        # (not repeated: it holds a password)
        raise ValueError("the URL must not hold credentials; pass them with --forward-header")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a query or fragment is not supported")
    prefix = parts.path.rstrip("/")
    if prefix and scheme.startswith("grpc"):
        raise ValueError(f"{url!r}: an OTLP/gRPC URL has no path")
    return ForwardTarget(scheme, parts.hostname, port or FORWARD_PORTS[scheme], prefix)


def parse_header(text: str) -> tuple[str, str]:
    """``'name: value'`` -> (lowercase name, value); ValueError with a one-line reason that
    never repeats the value (it may be a secret)."""
    name, sep, value = text.partition(":")
    name, value = name.strip().lower(), value.strip()
    if not sep or not name:
        raise ValueError("a header must be given as 'NAME: VALUE'")
    if not set(name) <= _TOKEN_CHARS:
        raise ValueError(f"header name {name!r} has characters a header name cannot have")
    if name in RESERVED_HEADERS or name.startswith("grpc-") or name.endswith("-bin"):
        raise ValueError(f"header {name!r} is set by agenttop itself and cannot be given")
    if not value.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"the value of header {name!r} must be printable ASCII")
    return name, value


class ServeSettings(BaseModel):
    """What ``agenttop serve`` needs to run."""

    model_config = ConfigDict(frozen=True)

    db: Path = Field(default_factory=default_db_path)
    grpc: str = DEFAULT_GRPC
    http: str | None = None  # OTLP/HTTP address; None: no HTTP (the CLI defaults to 4318)
    max_message_mb: int = Field(default=16, ge=1, le=2047)
    max_inflight_mb: int = Field(default=64, ge=1, le=65536)  # request bodies held at once
    # 20,000: as many as one writer transaction takes (Writer's max_group), ~1.6 KB each
    # with the request body it came in; under overload 50,000 held ~40 MB more and wrote
    # no faster (benchmarks/soak.py).
    queue_spans: int = Field(default=20_000, ge=1)
    sync: Literal["full", "normal"] = "full"
    decoders: int | None = Field(default=None, ge=1, le=64)  # None: by the number of cores
    keep_pii: bool = False  # store values as received instead of redacting PII
    max_value_kb: int = Field(default=64, ge=1, le=1024 * 1024)  # longer strings: truncated
    rules: Path | None = None  # alert rules file; None: the shipped defaults
    alert_interval_s: float = Field(default=5.0, gt=0, le=3600)
    # Retention (agenttop/store/retention.py): keep data this many seconds (None: forever),
    # and keep the file with its WAL under this many MB of 10^6 bytes (None: no limit).
    retention_s: int | None = Field(default=7 * 86400, ge=1)
    max_db_mb: int | None = Field(default=None, ge=1, le=10**9)
    # Security (agenttop/otlp/receiver.py): a bearer token every call must carry, and TLS.
    token: SecretStr | None = None  # SecretStr: never shown by repr() or in errors
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate it signed
    # Forwarding (agenttop/otlp/forward.py): the upstream URL, 'name: value' headers sent
    # with every forwarded call (values may be secrets), and the queue bound.
    forward: str | None = None
    forward_header: tuple[SecretStr, ...] = ()
    forward_queue_mb: int = Field(default=64, ge=1, le=65536)
    prometheus: str | None = None  # HOST:PORT to serve /metrics on (agenttop/prometheus.py)

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

    @field_validator("grpc", "http", "prometheus")
    @classmethod
    def _valid_address(cls, value: str | None) -> str | None:
        return None if value is None else format_address(*parse_address(value))

    @field_validator("forward")
    @classmethod
    def _valid_forward(cls, value: str | None) -> str | None:
        return None if value is None else parse_forward_url(value).url

    @field_validator("forward_header")
    @classmethod
    def _valid_headers(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for header in value:
            parse_header(header.get_secret_value())
        return value

    @property
    def forward_headers(self) -> tuple[tuple[str, str], ...]:
        return tuple(parse_header(h.get_secret_value()) for h in self.forward_header)

    @property
    def forward_queue_bytes(self) -> int:
        return self.forward_queue_mb * 1024 * 1024

    @property
    def max_db_bytes(self) -> int | None:
        return None if self.max_db_mb is None else self.max_db_mb * 10**6

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024

    @property
    def max_inflight_bytes(self) -> int:
        return self.max_inflight_mb * 1024 * 1024
