"""The pytest plugin: ``pytest --agenttop`` receives the session's OpenTelemetry and gates
it at the end, run in a fresh pytest process by pytester."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_check import PROMPT_AND_AUTH

pytest_plugins = ["pytester"]

AGENT_TESTS = '''
import os

import pytest

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

AUTH_FAILURES = int(os.environ.get("AUTH_FAILURES", "0"))


def run_agent(i):
    tracer = trace.get_tracer("support-agent")
    with tracer.start_as_current_span("invoke_agent support") as run:
        run.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o")
        if i < AUTH_FAILURES:
            with tracer.start_as_current_span("POST /oauth/token") as auth:
                auth.set_attribute("http.response.status_code", 401)
                auth.set_status(Status(StatusCode.ERROR))
    return "ok"


def test_the_exporter_is_pointed_at_agenttop():
    assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("i", range(30))
def test_agent_answers(i):
    assert run_agent(i) == "ok"
'''

RULES = PROMPT_AND_AUTH + """
[regression]
measures = ["failure_rate", "p50_ms"]  # p95 needs 100 calls a side
# These spans last microseconds: machine noise, not the code, moves them by 30 %.
p50_ms = {relative = 0.2, absolute = 5.0}
"""


@pytest.fixture
def project(pytester):
    pytester.makepyfile(test_agent=AGENT_TESTS)
    pytester.makefile(".toml", rules=RULES)
    return pytester


def test_a_healthy_session_passes_the_gate_and_keeps_its_database(project, monkeypatch):
    result = project.runpytest_subprocess("--agenttop=rules.toml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=31)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*agenttop release gate passed*",
                                 "PASS: all 2 rules judged, and each holds",
                                 "telemetry kept in *pytest.db*"])
    assert (project.path / ".agenttop" / "pytest.db").exists()


def test_a_breached_rule_fails_the_session_though_every_test_passed(project, monkeypatch):
    monkeypatch.setenv("AUTH_FAILURES", "2")
    result = project.runpytest_subprocess("--agenttop=rules.toml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=31)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*agenttop release gate FAILED*",
                                 "FAIL: 1 of 2 rules breached: auth-failures"])


def test_against_a_baseline_and_off_unless_asked(project, monkeypatch, tmp_path):
    baseline = tmp_path / "baseline.json"
    saved = project.runpytest_subprocess("--agenttop=rules.toml", "-p", "no:cacheprovider")
    assert saved.ret == 0
    done = subprocess.run(
        [sys.executable, "-m", "agenttop.cli", "check", "--db",
         str(project.path / ".agenttop" / "pytest.db"), "--rules", "rules.toml",
         "--save-baseline", str(baseline)], cwd=project.path, capture_output=True)
    assert done.returncode == 0, done.stderr
    again = project.runpytest_subprocess("--agenttop=rules.toml", "--agenttop-baseline",
                                         str(baseline), "-p", "no:cacheprovider")
    assert again.ret == 0
    again.stdout.fnmatch_lines(["*compared with*comparisons hold*"])
    plain = project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "exporter")
    assert plain.ret == pytest.ExitCode.TESTS_FAILED  # no receiver: nothing points there
    assert "agenttop release gate" not in plain.stdout.str()


def test_a_bad_rules_file_is_a_usage_error_before_any_test(project):
    project.makefile(".toml", bad="[[rule]]\nname = 'x'\n")
    result = project.runpytest_subprocess("--agenttop=bad.toml", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--agenttop: *bad.toml:1: rule \"x\": *"])
    assert "passed" not in result.stdout.str()
