"""Alerts evaluated inside a running receiver: firing, resolving, --on-alert, restart."""

from __future__ import annotations

import json
import sys
import time

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from agenttop.analysis.hooks import AlertCommand
from agenttop.analysis.rules import parse_rules
from agenttop.serve import BackgroundService
from tests.conftest import read_db, serve_settings

RULES_TEXT = '''
[[rule]]
name = "output-quality"
metric = "output_quality_score"
measure = "last"
op = "<"
threshold = 0.9
window = "1m"
'''
RULES = parse_rules(RULES_TEXT)


def send_quality(port: int, value: float, service: str = "support-agent") -> None:
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"127.0.0.1:{port}", insecure=True),
        export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": service}),
                             metric_readers=[reader])
    provider.get_meter("eval").create_gauge("output_quality_score").set(value)
    provider.shutdown()


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def alerts(db_path):
    return read_db(db_path).execute("SELECT * FROM alerts ORDER BY alert_id").fetchall()


def test_alert_fires_resolves_and_runs_the_command(db_path, tmp_path):
    out = tmp_path / "alerts.jsonl"
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')"
    command = AlertCommand(f"{sys.executable} -c \"{script}\"")
    settings = serve_settings(db_path, alert_interval_s=0.2)
    with BackgroundService(settings, RULES, command) as service:
        send_quality(service.grpc_port, 0.5)
        wait_for(lambda: len(alerts(db_path)) == 1)
        firing = alerts(db_path)[0]
        assert firing["state"] == "firing" and firing["value"] == 0.5
        assert firing["threshold"] == 0.9 and firing["metric"] == "output_quality_score"
        assert "support-agent" in firing["rule"]

        send_quality(service.grpc_port, 0.97)
        wait_for(lambda: alerts(db_path)[0]["state"] == "resolved")
        assert len(alerts(db_path)) == 1  # the same episode, now resolved
        assert alerts(db_path)[0]["resolved_ns"] >= firing["started_ns"]
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["state"] for e in events] == ["firing", "resolved"]
    assert events[0]["value"] == 0.5 and events[0]["threshold"] == 0.9


def test_firing_alert_survives_a_restart_without_a_second_episode(db_path):
    settings = serve_settings(db_path, alert_interval_s=0.2)
    with BackgroundService(settings, RULES) as service:
        send_quality(service.grpc_port, 0.4)
        wait_for(lambda: len(alerts(db_path)) == 1)
    with BackgroundService(settings, RULES) as service:
        time.sleep(1.0)  # several evaluations, still breaching: no new episode
        assert len(alerts(db_path)) == 1 and alerts(db_path)[0]["state"] == "firing"
        send_quality(service.grpc_port, 0.99)
        wait_for(lambda: alerts(db_path)[0]["state"] == "resolved")
    assert len(alerts(db_path)) == 1


def test_alert_lines_cannot_be_forged_by_a_client(tmp_path):
    # A service name with CR/LF, ESC, NUL and a right-to-left override reaches the alert
    # line in serve's log: it must arrive escaped, on one line.
    from tests.test_process import free_port, start_serve, wait_listening

    rules = tmp_path / "rules.toml"
    rules.write_text(RULES_TEXT)
    port = free_port()
    proc = start_serve(tmp_path / "a.db", port, "--rules", str(rules), "--alert-interval",
                       "0.2")
    try:
        wait_listening(proc, port)
        send_quality(port, 0.5, service="svc\r\n# fake line\x1b[31m\x00\u202e")
        time.sleep(2)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    [line] = [line for line in stderr.split("\n") if "alert firing" in line]
    assert "svc\\r\\n# fake line\\x1b[31m\\x00\\u202e" in line
    assert not any(c in stderr for c in "\r\x1b\x00\u202e")
    assert not any(line.startswith("# fake") for line in stderr.split("\n"))
