"""Validated settings for agenttop's commands: one pydantic model per command, whose fields
declare each option once (type, bounds, default, help text, environment variable); the CLI
makes its click options from them (agenttop/options.py)."""

from __future__ import annotations

import ipaddress
import shlex
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agenttop.store.redaction import PII_KINDS, ScanPolicy

DEFAULT_GRPC = "127.0.0.1:4317"
DEFAULT_HTTP = "127.0.0.1:4318"


def default_db_path() -> Path:
    return platformdirs.user_data_path("agenttop") / "agenttop.db"


def home_relative(path: Path) -> str:
    """``~/.local/share/agenttop/agenttop.db``: a path under the home directory, short."""
    try:
        return "~/" + str(path.expanduser().relative_to(Path.home()))
    except (ValueError, RuntimeError):  # elsewhere, or no home directory
        return str(path)


DEFAULT_DB_SHOWN = home_relative(default_db_path())


def default_config_path() -> Path:
    """The user's settings for the UI (keymap, theme, bell, window)."""
    return platformdirs.user_config_path("agenttop") / "config.toml"


DEFAULT_CONFIG_SHOWN = home_relative(default_config_path())


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


def parse_time(value: str) -> int:
    """``2026-12-02T14:05:00Z``, ``2026-12-02 14:05`` (local time without a zone) or ``now``
    -> nanoseconds since the epoch."""
    text = value.strip()
    if text.lower() == "now":
        return time.time_ns()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a time such as 2026-12-02T14:05:00Z, "
                         "2026-12-02 14:05 (local time) or now") from None
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def format_ms(value: float | None) -> str:
    """A duration in milliseconds for reports: ``4.2 ms``, ``250 ms``, ``1.25 s``; ``-``
    for none."""
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def counted(count: int, noun: str) -> str:
    """``1 span``, ``2 spans``, ``1,000 spans``: a count and its noun (singular given)."""
    return f"{count:,} {noun if count == 1 else noun + 's'}"


def format_duration(seconds: int) -> str:
    """The shortest exact spelling: 90 -> 90s, 900 -> 15m, 3600 -> 1h."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def bind_error(host: str, port: int) -> OSError | None:
    """The error listening on ``host:port`` would meet now, as a server binds (a port left
    in TIME_WAIT is free), for each address the host resolves to; None if it is free.
    Raises OSError when the host does not resolve."""
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port,
                                                               type=socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as e:
                return e
    return None


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


@dataclass(frozen=True)
class Cli:
    """How a settings field appears on the command line (agenttop/options.py makes the
    click option from the field: its type, default, bounds and help text, and this).

    ``flag``: the option's name (default ``--`` + the field's name with dashes);
    ``env``: the environment variable that may set it; ``show_default``: the default as
    ``--help`` says it, when the field's value would not read well; ``to_text``: the
    field's value as the option's text, for ``run`` to pass it on to ``serve``; ``secret``:
    passed on through ``env`` rather than on a command line any user can read in ``ps``.
    """

    flag: str | None = None
    metavar: str | None = None
    env: str | None = None
    show_default: str | None = None
    to_text: Callable[[Any], str] | None = None
    secret: bool = False
    exists: bool = False  # a path that must exist
    text: bool = False  # the option takes text the model parses (7d, 15m, a time)
    show_bounds: bool = True  # False where a value outside them means something (0: off)


FORWARD_HEADERS_ENV = "AGENTTOP_FORWARD_HEADERS"


def _off_or(value: object) -> object:
    return None if isinstance(value, str) and value.strip().lower() == "off" else value


class ServeSettings(BaseModel):
    """What ``agenttop serve`` needs to run: every option of ``serve`` (and of ``run``, which
    passes them on to its ``serve``) is a field here, with its bounds, default and help."""

    model_config = ConfigDict(frozen=True)

    db: Annotated[Path, Cli(env="AGENTTOP_DB", metavar="FILE",
                            show_default=DEFAULT_DB_SHOWN)] = Field(
        default_factory=default_db_path,
        description="SQLite database file (env AGENTTOP_DB).")
    grpc: Annotated[str, Cli(metavar="HOST:PORT")] = Field(
        DEFAULT_GRPC,
        description="Where to listen for OTLP/gRPC and the standard gRPC health service "
        "(which needs no token). Port 0 picks a free port.")
    http: Annotated[str | None, Cli(metavar="HOST:PORT|off", to_text=lambda v: v or "off")] = (
        Field(DEFAULT_HTTP,
              description="Where to listen for OTLP/HTTP (POST /v1/traces, /v1/metrics, "
              "/v1/logs; protobuf or JSON, gzip or not) and the probes GET /healthz (up) and "
              "/readyz (taking data); 'off': no HTTP."))
    max_message_mb: Annotated[int, Cli(metavar="MB")] = Field(
        16, ge=1, le=2047,
        description="Largest request accepted, in MiB, and the most a gzip body may inflate "
        "to; larger ones get RESOURCE_EXHAUSTED (HTTP 413).")
    max_inflight_mb: Annotated[int, Cli(metavar="MB")] = Field(
        64, ge=1, le=65536,
        description="Request bodies held in memory at once, in MiB, over all calls being "
        "read, decoded or written (a call counts as --max-message-mb until its body is read). "
        "Calls past it wait up to a second, then are told UNAVAILABLE and retry.")
    body_timeout_s: Annotated[float, Cli(flag="--body-timeout", metavar="SECONDS")] = Field(
        5.0, ge=0.1, le=300,
        description="How long a call may take to deliver its body once admitted; a client "
        "that sends nothing, or trickles, is then refused (DEADLINE_EXCEEDED, HTTP 408) and "
        "its share of --max-inflight-mb goes to the others.")
    # 20,000: as many as one writer transaction takes (Writer's max_group), ~1.6 KB each
    # with the request body it came in; under overload 50,000 held ~40 MB more and wrote
    # no faster (benchmarks/soak.py).
    queue_spans: Annotated[int, Cli(metavar="N")] = Field(
        20_000, ge=1, le=10_000_000,
        description="Items (spans, points, log records) accepted but not yet committed; "
        "past it, exporters are told UNAVAILABLE (HTTP 503) and retry.")
    sync: Literal["full", "normal"] = Field(
        "full", description="SQLite synchronous mode: 'full' survives power loss, 'normal' "
        "only process crashes.")
    decoders: Annotated[int | None, Cli(metavar="N", show_default="by the number of CPU cores")
                        ] = Field(None, ge=1, le=64,
                                  description="Worker processes that decode requests.")
    keep_pii: bool = Field(
        False, description="Store attribute values and log bodies as received. By default "
        "PII found in them (SSNs, card numbers, e-mail addresses, phone numbers, IPs, API "
        "keys) is replaced by a token such as [SSN] before anything is written.")
    ignore_pii: Annotated[tuple[str, ...], Cli(metavar="KIND", env="AGENTTOP_IGNORE_PII")] = (
        Field((), description="Do not look for this kind of PII (neither reported nor "
              f"replaced): one of {', '.join(PII_KINDS)}. Repeatable, or comma-separated; "
              "e.g. --ignore-pii phone,ipv4 where order numbers look like phone numbers. "
              "Loopback, private and documentation IP addresses are never PII."))
    max_value_kb: Annotated[int, Cli(metavar="KB")] = Field(
        64, ge=1, le=1024 * 1024,
        description="Longest string value stored, in KiB (attributes, log bodies): longer "
        "ones are cut and end in a marker such as …[truncated 1,234 bytes], before PII "
        "scanning.")
    # Retention (agenttop/store/retention.py): keep data this many seconds (None: forever),
    # and keep the file with its WAL under this many MB of 10^6 bytes (None: no limit).
    retention_s: Annotated[int | None, Cli(
        flag="--retention", metavar="AGE", show_default="7d", show_bounds=False, text=True,
        to_text=lambda v: "off" if v is None else format_duration(v))] = Field(
        7 * 86400, ge=1,
        description="Keep data this long: 12h, 7d, 30d... Whole traces go once they ended "
        "(and arrived) longer ago, with their logs and findings, and so do older logs, metric "
        "points, rollups, resolved alerts and audit rows; 'off' or 0 keeps everything.")
    max_db_mb: Annotated[int | None, Cli(metavar="MB", show_default="0", show_bounds=False,
                                         to_text=lambda v: str(v or 0))] = Field(
        None, ge=1, le=10**9,
        description="Keep the database file, with its write-ahead log, under about this many "
        "MB (1 MB = 1,000,000 bytes): once the data passes 7/8 of it, the oldest traces, logs "
        "and points are pruned and the space is given back to the file system. 0: no limit.")
    rules: Annotated[Path | None, Cli(metavar="FILE", exists=True)] = Field(
        None, description="Alert rules (TOML). Default: the shipped rules: prompt failures "
        "> 5 %, tool errors > 2 %, any memory or auth failure, runtime p99 > 5 s, "
        "output_quality_score < 0.9.")
    prices: Annotated[Path | None, Cli(metavar="FILE", exists=True)] = Field(
        None, description="Your own model prices (TOML [[price]] tables: provider, model "
        "or glob, USD per million input / output / cache_read / cache_write / reasoning "
        "tokens, optional from / until dates), for self-hosted, fine-tuned or negotiated "
        "models; they take precedence over the price database (genai-prices), whose "
        "prices of the day a call started are used otherwise. A model with no price shows "
        "as unpriced, never $0.")
    on_alert: Annotated[str | None, Cli(metavar="COMMAND")] = Field(
        None, description="Run COMMAND whenever an alert fires or resolves, with the alert "
        "as JSON on its standard input (no shell; at most 10 s each).")
    alert_interval_s: Annotated[float, Cli(flag="--alert-interval", metavar="SECONDS")] = (
        Field(5.0, ge=0.1, le=3600, description="Seconds between alert evaluations."))
    # Security (agenttop/otlp/receiver.py): a bearer token every call must carry, and TLS.
    token: Annotated[SecretStr | None, Cli(env="AGENTTOP_TOKEN", metavar="TOKEN",
                                           secret=True)] = Field(
        None, description="Require 'authorization: Bearer TOKEN' (gRPC metadata, HTTP header) "
        "on every OTLP call; others get UNAUTHENTICATED (HTTP 401). Health checks need none "
        "(env AGENTTOP_TOKEN, which other users cannot see in `ps`).")
    insecure: bool = Field(
        False, description="Allow listening on a non-loopback address without --token.")
    tls_cert: Annotated[Path | None, Cli(metavar="FILE")] = Field(
        None, description="Serve TLS (gRPC) and HTTPS (HTTP) with this PEM certificate "
        "(chain); needs --tls-key.")
    tls_key: Annotated[Path | None, Cli(metavar="FILE")] = Field(
        None, description="The PEM private key of --tls-cert.")
    tls_client_ca: Annotated[Path | None, Cli(metavar="FILE")] = Field(
        None, description="Mutual TLS: clients must present a certificate signed by a CA in "
        "this PEM file.")
    log_format: Literal["text", "json"] = Field(
        "text", description="'json': start lines, alert transitions and warnings as JSON "
        "lines on stderr, for log shippers.")
    # Forwarding (agenttop/otlp/forward.py): the upstream URL, 'name: value' headers sent
    # with every forwarded call (values may be secrets), and the queue bound.
    forward: Annotated[str | None, Cli(metavar="URL")] = Field(
        None, description="Send everything received on to an upstream OTLP collector or "
        "backend (Jaeger, Tempo, Phoenix, another agenttop): grpc://HOST:PORT or "
        "grpcs://HOST:PORT for OTLP/gRPC (port 4317 / 443 by default), "
        "http://HOST:PORT[/PREFIX] or https://... for OTLP/HTTP protobuf (POST "
        "PREFIX/v1/traces, /v1/metrics, /v1/logs). Requests are forwarded once stored, as the "
        "client sent them: agenttop redacts PII in what it stores, not in what it forwards. "
        "An unreachable upstream never slows ingest: requests wait in memory "
        "(--forward-queue-mb) and are retried with backoff; answers such as 400 or "
        "INVALID_ARGUMENT count them as failed.")
    forward_header: Annotated[tuple[SecretStr, ...], Cli(
        metavar="'NAME: VALUE'", env=FORWARD_HEADERS_ENV, secret=True)] = Field(
        (), description="Send this header (gRPC metadata) with every forwarded call, e.g. "
        "'authorization: Bearer TOKEN' for the upstream (--token is for incoming calls only). "
        f"Repeatable; env {FORWARD_HEADERS_ENV}, one header a line, keeps values out of `ps`.")
    forward_queue_mb: Annotated[int, Cli(metavar="MB")] = Field(
        64, ge=1, le=65536,
        description="Memory for requests waiting to be forwarded, in MiB; when it is full the "
        "oldest are dropped (and counted).")
    prometheus: Annotated[str | None, Cli(metavar="HOST:PORT")] = Field(
        None, description="Serve Prometheus metrics at http://HOST:PORT/metrics (off by "
        "default; 9464 is the usual port): per layer, spans, failures, failure ratio and "
        "latency quantiles over 1m, 5m and 15m (a window label); firing alerts; ingest and "
        "forwarding counters. With --token, scrapes need 'Authorization: Bearer TOKEN'; with "
        "--tls-cert it is HTTPS. Like the OTLP ports, a non-loopback address needs --token or "
        "--insecure.")

    @field_validator("ignore_pii", mode="before")
    @classmethod
    def _pii_kinds(cls, value: object) -> object:
        items = [value] if isinstance(value, str) else list(value or ())
        kinds = tuple(dict.fromkeys(k.strip().lower() for item in items
                                    for k in str(item).split(",") if k.strip()))
        unknown = [k for k in kinds if k not in PII_KINDS]
        if unknown:
            raise ValueError(f"unknown PII kind {unknown[0]!r}: the kinds are "
                             f"{', '.join(PII_KINDS)}")
        return kinds

    @property
    def scan_policy(self) -> ScanPolicy:
        """How the receiver scans what it stores, from --keep-pii and --ignore-pii."""
        return ScanPolicy(redact=not self.keep_pii, ignore=frozenset(self.ignore_pii))

    @field_validator("http", mode="before")
    @classmethod
    def _http_off(cls, value: object) -> object:
        return _off_or(value)

    @field_validator("retention_s", mode="before")
    @classmethod
    def _retention_text(cls, value: object) -> object:
        return parse_retention(value) if isinstance(value, str) else (value or None)

    @field_validator("max_db_mb", mode="before")
    @classmethod
    def _no_db_limit(cls, value: object) -> object:
        return None if value in (0, "0") else value

    @field_validator("on_alert")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is not None and not shlex.split(value):  # bad quoting: ValueError too
            raise ValueError("the alert command is empty")
        return value

    @field_validator("token")
    @classmethod
    def _nonempty_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        # Clients send "Bearer TOKEN" with the token trimmed: a secret file's trailing
        # newline would otherwise refuse every one of them.
        token = value.get_secret_value().strip()
        if not token:
            raise ValueError("must not be empty")
        return SecretStr(token)

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


# ``agenttop run`` takes every option of ``serve`` and passes it on to its ``serve`` child,
# except these (option field -> why not).
RUN_DOES_NOT_PASS = {
    "log_format": "run reads its serve's log (beside the database) as text lines: its "
                  "readiness and its last error",
}


def parse_where(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``("service.version=1.4.2", ...)`` as (key, value) pairs; ValueError names the bad
    one."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not KEY=VALUE (e.g. service.version=1.4.2)")
        out.append((key.strip(), value.strip()))
    return tuple(out)



class UiSettings(BaseModel):
    """What ``agenttop ui`` needs."""

    model_config = ConfigDict(frozen=True)

    db: Annotated[Path, Cli(env="AGENTTOP_DB", metavar="FILE",
                            show_default=DEFAULT_DB_SHOWN)] = Field(
        default_factory=default_db_path, description="SQLite database file (env AGENTTOP_DB).")
    rules: Annotated[Path | None, Cli(metavar="FILE", exists=True)] = Field(
        None, description=ServeSettings.model_fields["rules"].description)


class CheckSettings(UiSettings):
    """What ``agenttop check`` needs."""

    window_s: Annotated[int | None, Cli(flag="--window", metavar="AGE",
                                        show_default="15m of a database; all of a run",
                                        show_bounds=False, text=True,
                                        to_text=format_duration)] = Field(
        None, ge=1, description="How far back to look: 90s, 15m, 2h, 7d... The window ends "
        "when the newest record arrived (by the receiver's clock, so a client's skewed clock "
        "cannot move it), or at --until: a gate run after a test run sees that run. A run "
        "(OTLP/JSON files, or --where / --since) is judged whole unless --window is given.")
    until_ns: Annotated[int | None, Cli(flag="--until", metavar="TIME", text=True,
                                        show_default="when the newest record arrived")] = Field(
        None, description="End the window here instead: 2026-12-02T14:05:00Z, "
        "2026-12-02 14:05 (local time) or now.")
    since_ns: Annotated[int | None, Cli(flag="--since", metavar="TIME", text=True,
                                        show_default="the run's first record")] = Field(
        None, description="Judge only records from this time on (written as --until).")
    prices: Annotated[Path | None, Cli(metavar="FILE", exists=True)] = Field(
        None, description="Your own model prices for OTLP/JSON files (as serve --prices).")
    where: Annotated[tuple[str, ...], Cli(metavar="KEY=VALUE")] = Field(
        (), description="Judge only telemetry whose resource has this attribute value, e.g. "
        "service.version=1.4.2 or deployment.environment=ci. Repeatable: all must hold.")
    min_samples: Annotated[int | None, Cli(metavar="N", show_default="each rule's own")] = (
        Field(None, ge=0, description="Judge every rule on at least N samples (spans, "
              "retrievals, points) instead of its min_samples."))
    allow_inconclusive: bool = Field(
        False, description="Exit 0 instead of 3 when the verdict is inconclusive.")
    baseline: Annotated[Path | None, Cli(metavar="BASE", exists=True)] = Field(
        None, description="Compare the run with this baseline (a summary saved by "
        "--save-baseline, an agenttop database or an OTLP/JSON file, taken whole) per "
        "layer, agent, tool and model; regressions beyond the rules file's [regression] "
        "tolerances that are credible for the sample sizes fail the gate.")
    save_baseline: Annotated[Path | None, Cli(metavar="FILE")] = Field(
        None, description="Write the run's summary here (small, versioned JSON to commit "
        "next to the tests) for later --baseline.")
    output: Annotated[Literal["table", "markdown", "json", "junit"], Cli(flag="--format")] = (
        Field("table", description="'table' for people, 'markdown' for a CI step summary, "
              "'json' for scripts, 'junit' (JUnit XML: a test case per rule) for CI "
              "test reports."))

    @field_validator("window_s", mode="before")
    @classmethod
    def _window_text(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("until_ns", "since_ns", mode="before")
    @classmethod
    def _time_text(cls, value: object) -> object:
        return parse_time(value) if isinstance(value, str) else value

    @field_validator("where", mode="before")
    @classmethod
    def _where_pairs(cls, value: object) -> object:
        items = (value,) if isinstance(value, str) else tuple(value or ())
        parse_where(items)  # ValueError names the one that is not KEY=VALUE
        return items
