"""Who may write: the bearer token, the refusal to open ports by accident, TLS and mutual
TLS, and the audit trail of refused calls (which never holds the token or the payload)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agenttop.config import ServeSettings
from agenttop.otlp import audit
from agenttop.serve import BackgroundService
from tests.conftest import read_db, serve_settings
from tests.test_bad_input import TRACES, span, traces_request
from tests.test_process import free_port, run_cli, wait_listening

TOKEN = "s3cret-Token-4b1d9f"  # distinctive, so a leak anywhere is found by a plain search


def raw_call(port: int, body: bytes, metadata=None, credentials=None) -> bytes:
    target = f"127.0.0.1:{port}"
    channel = (grpc.secure_channel(target, credentials) if credentials
               else grpc.insecure_channel(target))
    with channel:
        return channel.unary_unary(TRACES)(body, metadata=metadata, timeout=10)


def refusal(port: int, body: bytes, metadata=None, credentials=None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        raw_call(port, body, metadata, credentials)
    return info.value


def span_names(db_path: Path) -> set[str]:
    return {r[0] for r in read_db(db_path).execute("SELECT name FROM spans")}


def sdk_export(exporter: OTLPSpanExporter, name: str) -> SpanExportResult:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("test").start_as_current_span(name):
        pass
    try:
        return exporter.export(memory.get_finished_spans())
    finally:
        exporter.shutdown()


BEARER = (("authorization", f"Bearer {TOKEN}"),)


# --- token ----------------------------------------------------------------------------------


def test_right_token_is_served_and_missing_or_wrong_is_unauthenticated(make_server, db_path):
    server = make_server(token=TOKEN)
    port = server.grpc_port
    missing = refusal(port, traces_request(span(1)))
    wrong = refusal(port, traces_request(span(2)), (("authorization", "Bearer nope"),))
    not_bearer = refusal(port, traces_request(span(3)), (("authorization", TOKEN),))
    for error in (missing, wrong, not_bearer):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert TOKEN not in (error.details() or "") and "nope" not in (error.details() or "")
    raw_call(port, traces_request(span(4)), BEARER)
    assert span_names(db_path) == {"span-4"}
    assert server.receiver.unauthenticated == 3


def test_sdk_exporter_with_the_token_header(make_server, db_path):
    server = make_server(token=TOKEN)
    endpoint = f"127.0.0.1:{server.grpc_port}"
    good = OTLPSpanExporter(endpoint=endpoint, insecure=True,
                            headers={"authorization": f"Bearer {TOKEN}"})
    bad = OTLPSpanExporter(endpoint=endpoint, insecure=True,
                           headers={"authorization": "Bearer wrong"})
    assert sdk_export(good, "with-token") == SpanExportResult.SUCCESS
    assert sdk_export(bad, "wrong-token") == SpanExportResult.FAILURE
    assert sdk_export(OTLPSpanExporter(endpoint=endpoint, insecure=True),
                      "no-token") == SpanExportResult.FAILURE
    assert span_names(db_path) == {"with-token"}


def test_sdk_exporter_token_from_the_environment(make_server, db_path, monkeypatch):
    server = make_server(token=TOKEN)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True)
    assert sdk_export(exporter, "env-token") == SpanExportResult.SUCCESS
    assert span_names(db_path) == {"env-token"}


def test_token_never_in_settings_repr():
    settings = ServeSettings(token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


# --- TLS ------------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_cert(common_name: str, issuer=None, *, ca: bool = False) -> tuple[bytes, bytes, tuple]:
    """(cert PEM, key PEM, (cert, key) for signing others); self-signed when no issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem, (cert, key)


@pytest.fixture
def tls_files(tmp_path):
    ca_pem, _, ca = make_cert("agenttop test CA", ca=True)
    server_pem, server_key, _ = make_cert("localhost", ca)
    client_pem, client_key, _ = make_cert("agent", ca)
    files = {}
    for name, data in {"ca": ca_pem, "cert": server_pem, "key": server_key,
                       "client_cert": client_pem, "client_key": client_key}.items():
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(data)
    return files


def test_token_over_tls_with_the_sdk_exporter(make_server, db_path, tls_files):
    server = make_server(token=TOKEN, tls_cert=tls_files["cert"], tls_key=tls_files["key"])
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_files["ca"].read_bytes())
    exporter = OTLPSpanExporter(endpoint=f"https://127.0.0.1:{server.grpc_port}", insecure=False,
                                credentials=credentials,
                                headers={"authorization": f"Bearer {TOKEN}"})
    assert sdk_export(exporter, "over-tls") == SpanExportResult.SUCCESS
    assert span_names(db_path) == {"over-tls"}
    # A plaintext client cannot talk to the TLS port at all.
    error = refusal(server.grpc_port, traces_request(span(1)), BEARER)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert span_names(db_path) == {"over-tls"}


def test_mutual_tls_requires_a_client_certificate(make_server, db_path, tls_files):
    server = make_server(tls_cert=tls_files["cert"], tls_key=tls_files["key"],
                         tls_client_ca=tls_files["ca"])
    ca = tls_files["ca"].read_bytes()
    anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
    error = refusal(server.grpc_port, traces_request(span(1)), credentials=anonymous)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    with_cert = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=tls_files["client_key"].read_bytes(),
        certificate_chain=tls_files["client_cert"].read_bytes())
    raw_call(server.grpc_port, traces_request(span(2)), credentials=with_cert)
    assert span_names(db_path) == {"span-2"}


def test_tls_options_are_checked_by_the_cli(tmp_path, tls_files):
    db = tmp_path / "a.db"
    half = run_cli("serve", "--db", str(db), "--tls-cert", str(tls_files["cert"]))
    assert half.returncode == 2 and "--tls-cert and --tls-key must be given together" in half.stderr
    missing = run_cli("serve", "--db", str(db), "--grpc", f"127.0.0.1:{free_port()}",
                      "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(tls_files["key"]))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"agenttop: error: --tls-cert {tmp_path / 'nope.pem'}: cannot read it "
        "(No such file or directory)"]


# --- no open ports by accident -------------------------------------------------------------


def test_non_loopback_without_token_is_refused(tmp_path):
    result = run_cli("serve", "--db", str(tmp_path / "a.db"), "--grpc", "0.0.0.0:0")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "agenttop: error: refusing to listen on 0.0.0.0:0 without --token: anyone who can "
        "reach it could write to your database; pass --token, or --insecure to do it anyway")
    assert not (tmp_path / "a.db").exists()


@pytest.mark.parametrize("how", ["insecure", "env-token"])
def test_non_loopback_starts_with_insecure_or_a_token(tmp_path, how):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    extra = []
    if how == "insecure":
        extra = ["--insecure"]
    else:
        env["AGENTTOP_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(tmp_path / "a.db"),
         "--grpc", f"0.0.0.0:{port}", "--http", "off", "--decoders", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_listening(proc, port)
        if how == "env-token":
            assert refusal(port, traces_request(span(1))).code() == grpc.StatusCode.UNAUTHENTICATED
            raw_call(port, traces_request(span(2)), BEARER)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    expected = "token required" if how == "env-token" else "no token"
    assert f"OTLP/gRPC on 0.0.0.0:{port} ({expected})" in err
    assert TOKEN not in out + err


# --- audit trail ----------------------------------------------------------------------------


def test_refusals_are_audited_coalesced_and_never_hold_the_token(tmp_path):
    db = tmp_path / "audit.db"
    settings = serve_settings(db, token=TOKEN,
                             max_message_mb=1)
    with BackgroundService(settings) as service:
        port = service.grpc_port
        for _ in range(50):
            refusal(port, traces_request(span(1)), (("authorization", "Bearer wrong"),))
        refusal(port, traces_request(span(1)))
        garbage = b"\xff\xff\xff" + TOKEN.encode() + b" payload-marker"
        error = refusal(port, garbage, BEARER)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        big = traces_request(span(2, name="x" * (1024 * 1024 + 10)))
        assert refusal(port, big, BEARER).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        raw_call(port, traces_request(span(3)), BEARER)
        assert service.receiver.unauthenticated == 51 and service.receiver.malformed == 1
        assert service.receiver.too_large == 1
        deadline = time.monotonic() + 10  # written in the background about once a second
        while time.monotonic() < deadline:
            counted = read_db(db).execute("SELECT coalesce(sum(count), 0) FROM audit")
            if list(counted)[0][0] == 53:
                break
            time.sleep(0.1)
    rows = list(read_db(db).execute("SELECT * FROM audit"))
    by_reason: dict[str, int] = {}
    for row in rows:
        assert row["peer"] == "ipv4:127.0.0.1" and row["signal"] == "traces"
        assert row["time_ns"] > 0
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["count"]
    assert by_reason == {audit.WRONG_TOKEN: 50, audit.MISSING_TOKEN: 1, audit.MALFORMED: 1,
                         audit.TOO_LARGE: 1}
    assert len(rows) <= 4 * 11  # at most one row per (peer, reason) per second
    content = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit"))
    assert TOKEN.encode() not in content and b"payload-marker" not in content


def test_audit_keys_are_bounded():
    class FakeWriter:
        def __init__(self):
            self.calls = []

        def call(self, fn):
            from concurrent.futures import Future

            self.calls.append(fn)
            future = Future()
            future.set_result(None)
            return future

    import asyncio

    async def flood():
        log = audit.AuditLog(FakeWriter(), clock=lambda: 1)
        for n in range(audit.MAX_KEYS * 3):
            log.record(f"ipv4:10.0.{n // 256}.{n % 256}:5000", "traces", audit.WRONG_TOKEN)
        assert len(log._pending) == audit.MAX_KEYS + 1
        assert log._pending[(audit.OTHER_PEERS, "traces", audit.WRONG_TOKEN)][1] == (
            audit.MAX_KEYS * 2)
        log.close()
        assert len(log.writer.calls) == 1

    asyncio.run(flood())


# --- log format -----------------------------------------------------------------------------


def test_json_log_format(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AGENTTOP_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttop.cli", "serve", "--db", str(tmp_path / "a.db"),
         "--grpc", f"127.0.0.1:{port}", "--http", "off", "--decoders", "1",
         "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_listening(proc, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    entries = [json.loads(line) for line in err.splitlines()]
    messages = [e["message"] for e in entries]
    assert f"OTLP/gRPC on 127.0.0.1:{port} (token required)" in messages
    assert "stopping, flushing to disk" in messages
    assert all(e["level"] == "info" and e["logger"] == "agenttop.serve" and e["time"]
               for e in entries)
    assert TOKEN not in err
