"""`agenttop check`: the release gate's verdicts and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from opentelemetry.trace import Status, StatusCode

from agenttop.serve import BackgroundService
from tests.conftest import serve_settings
from tests.test_sdk_ingest import tracer_provider


def fill(db_path, auth_failures: int) -> None:
    with BackgroundService(serve_settings(db_path)) as service:
        provider = tracer_provider(service)
        tracer = provider.get_tracer("agent")
        for i in range(30):
            with tracer.start_as_current_span("invoke_agent support") as root:
                root.set_attribute("gen_ai.operation.name", "invoke_agent")
                with tracer.start_as_current_span("chat gpt-4o") as chat:
                    chat.set_attribute("gen_ai.operation.name", "chat")
                    chat.set_attribute("gen_ai.request.model", "gpt-4o")
                if i < auth_failures:
                    with tracer.start_as_current_span("POST /oauth/token") as auth:
                        auth.set_attribute("http.response.status_code", 401)
                        auth.set_status(Status(StatusCode.ERROR))
        provider.shutdown()


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agenttop.cli", "check", *args],
                          capture_output=True, text=True, timeout=120)


def test_healthy_database_passes(db_path):
    fill(db_path, auth_failures=0)
    result = run_check("--db", str(db_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: all" in result.stdout
    assert "prompt" in result.stdout and "runtime" in result.stdout


def test_auth_failures_fail_the_gate(db_path):
    fill(db_path, auth_failures=2)
    result = run_check("--db", str(db_path), "--window", "1h")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BREACHED" in result.stdout and "auth-failures" in result.stdout
    report = json.loads(run_check("--db", str(db_path), "--format", "json").stdout)
    assert report["ok"] is False
    auth = next(r for r in report["rules"] if r["rule"] == "auth-failures")
    assert auth["status"] == "breached" and auth["value"] == 2
    assert report["layers"]["auth"]["failures"] == 2


def test_unreadable_inputs_exit_2(tmp_path, db_path):
    missing = run_check("--db", str(tmp_path / "missing.db"))
    assert missing.returncode == 2 and "no database" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    assert run_check("--db", str(junk)).returncode == 2
    fill(db_path, auth_failures=0)
    bad_rules = tmp_path / "rules.toml"
    bad_rules.write_text('[[rule]]\nname = "x"\nlayer = "tool"\nmeasure = "failure_rate"\n'
                         'op = ">"\ntreshold = 0.1\nwindow = "5m"\n')
    result = run_check("--db", str(db_path), "--rules", str(bad_rules))
    assert result.returncode == 2
    assert "rules.toml:6" in result.stderr and "treshold" in result.stderr
    assert run_check("--db", str(db_path), "--window", "soon").returncode == 2
