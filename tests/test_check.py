"""`agenttop check`: the release gate's verdicts and exit codes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from junitparser import JUnitXml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from agenttop.serve import BackgroundService
from tests.conftest import read_db, serve_settings
from tests.test_sdk_ingest import endpoint, tracer_provider

# The rules the traffic of ``fill`` has enough samples for: no tool calls, no metrics.
PROMPT_AND_AUTH = """
[[rule]]
name = "prompt-failure-rate"
layer = "prompt"
measure = "failure_rate"
op = ">"
threshold = 0.05
window = "15m"
min_samples = 20

[[rule]]
name = "auth-failures"
layer = "auth"
measure = "failures"
op = ">"
threshold = 0
window = "15m"
"""
HOUR_NS = 3600 * 10**9


def agent_runs(tracer, runs: int, auth_failures: int) -> None:
    """``runs`` agent runs, each a chat; the first ``auth_failures`` also fail a login."""
    for i in range(runs):
        with tracer.start_as_current_span("invoke_agent support") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            with tracer.start_as_current_span("chat gpt-4o") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                chat.set_attribute("gen_ai.request.model", "gpt-4o")
            if i < auth_failures:
                with tracer.start_as_current_span("POST /oauth/token") as auth:
                    auth.set_attribute("http.response.status_code", 401)
                    auth.set_status(Status(StatusCode.ERROR))


def fill(db_path, auth_failures: int, *, tool_calls: int = 0, tool_failures: int = 0,
         ahead_ns: int = 0) -> None:
    """30 agent runs through the real SDK; ``ahead_ns``: one more span dated that far ahead
    of now, as a client with a skewed clock sends it."""
    with BackgroundService(serve_settings(db_path)) as service:
        provider = tracer_provider(service)
        tracer = provider.get_tracer("agent")
        agent_runs(tracer, 30, auth_failures)
        for i in range(tool_calls):
            with tracer.start_as_current_span("execute_tool lookup") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                if i < tool_failures:
                    tool.set_attribute("error.type", "ToolError")
                    tool.set_status(Status(StatusCode.ERROR))
        if ahead_ns:
            start = time.time_ns() + ahead_ns
            tracer.start_span("invoke_agent from the future", start_time=start).end(
                end_time=start + 10**9)
        provider.shutdown()


def rules_file(tmp_path, text: str = PROMPT_AND_AUTH):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return str(path)


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agenttop.cli", "check", *args],
                          capture_output=True, text=True, timeout=120)


def test_healthy_database_passes(db_path, tmp_path):
    fill(db_path, auth_failures=0)
    result = run_check("--db", str(db_path), "--rules", rules_file(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: all 2 rules judged, and each holds" in result.stdout
    assert "prompt" in result.stdout and "runtime" in result.stdout


def test_an_empty_database_is_inconclusive_not_a_pass(db_path):
    fill(db_path, auth_failures=0)
    empty = db_path.with_name("empty.db")
    from agenttop.store import open_writer
    open_writer(empty).close()
    result = run_check("--db", str(empty))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "INCONCLUSIVE: no data in the file" in result.stdout
    allowed = run_check("--db", str(empty), "--allow-inconclusive")
    assert allowed.returncode == 0 and "INCONCLUSIVE" in allowed.stdout


def test_too_few_samples_is_inconclusive_and_names_the_rule(db_path):
    # 22 of 41 tool calls failed: the shipped tool rule wants 50 calls before it judges.
    fill(db_path, auth_failures=0, tool_calls=41, tool_failures=22)
    result = run_check("--db", str(db_path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "tool-error-rate (too few samples: 41 of 50 spans)" in result.stdout
    report = json.loads(run_check("--db", str(db_path), "--format", "json").stdout)
    assert report["verdict"] == "inconclusive" and report["ok"] is False
    # The run's own minimum: judged on 41 calls, 54 % failed.
    judged = run_check("--db", str(db_path), "--min-samples", "20")
    assert judged.returncode == 1, judged.stdout
    assert "FAIL" in judged.stdout and "tool-error-rate" in judged.stdout


def test_an_empty_rules_file_is_a_usage_error(db_path, tmp_path):
    fill(db_path, auth_failures=0)
    result = run_check("--db", str(db_path), "--rules", rules_file(tmp_path, "# none\n"))
    assert result.returncode == 2
    assert "no rules to check" in result.stderr


def test_one_skewed_clock_does_not_move_the_window(db_path, tmp_path):
    # Three auth failures now, and one span dated an hour ahead: the window must still end
    # when the records arrived, not at the span from the future.
    fill(db_path, auth_failures=3, ahead_ns=HOUR_NS)
    # The receiver counted it as it came, for the dashboard.
    [(status,)] = read_db(db_path).execute("SELECT status FROM receiver").fetchall()
    assert json.loads(status)["receiver"]["skewed"] == 1
    result = run_check("--db", str(db_path), "--rules", rules_file(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "auth-failures" in result.stdout and "BREACHED" in result.stdout
    assert "clock skew: 1 spans dated ahead of arrival" in result.stdout
    report = json.loads(run_check("--db", str(db_path), "--rules", rules_file(tmp_path),
                                  "--format", "json").stdout)
    assert report["clock_skew"]["spans_ahead"] == 1
    # --until ends the window where the user says: an hour ago nothing had happened yet.
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    earlier = run_check("--db", str(db_path), "--rules", rules_file(tmp_path),
                        "--until", before)
    assert earlier.returncode == 3, earlier.stdout


def test_auth_failures_fail_the_gate(db_path):
    fill(db_path, auth_failures=2)
    result = run_check("--db", str(db_path), "--window", "1h")
    assert "verdict" in run_check("--db", str(db_path), "--format", "json").stdout
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


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory on a file system mounted read-only (a tmpfs, remounted): where an
    archived database may be read but nothing, not even SQLite's -shm file, written."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a file system needs privileges this machine does not give")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_check_and_scorecard_read_a_database_in_a_read_only_directory(read_only_dir, db_path,
                                                                       tmp_path):
    fill(db_path, auth_failures=0)
    (read_only_dir / "agenttop.db").write_bytes(db_path.read_bytes())
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_dir)], check=True)
    db = str(read_only_dir / "agenttop.db")
    result = run_check("--db", db, "--rules", rules_file(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    scorecard = subprocess.run([sys.executable, "-m", "agenttop.cli", "scorecard", "--db", db],
                               capture_output=True, text=True, timeout=120)
    assert scorecard.returncode == 0, scorecard.stderr
    assert "support" in scorecard.stdout or "Production Readiness" in scorecard.stdout


def spend(db_path, output_tokens: int) -> None:
    """20 runs, each one gpt-4o-mini call: 1,000 input and ``output_tokens`` output tokens."""
    with BackgroundService(serve_settings(db_path)) as service:
        provider = tracer_provider(service)
        tracer = provider.get_tracer("agent")
        for _ in range(20):
            with tracer.start_as_current_span("invoke_agent support"), \
                    tracer.start_as_current_span("chat gpt-4o-mini") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                chat.set_attribute("gen_ai.provider.name", "openai")
                chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                chat.set_attribute("gen_ai.usage.input_tokens", 1000)
                chat.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        provider.shutdown()


@pytest.mark.parametrize(("output_tokens", "code", "verdict"), [
    # $0.15 / $0.60 per 1M tokens: 1,000 in + 1,000 out is $0.00075 a run.
    (1000, 0, "PASS"),
    # 1,000 in + 100,000 out is $0.06015 a run, over the example's 5 cents.
    (100_000, 1, "FAIL"),
])
def test_the_example_cost_per_run_rule(db_path, output_tokens, code, verdict):
    spend(db_path, output_tokens)
    rules = Path(__file__).parent.parent / "examples" / "cost.toml"
    text = rules.read_text().replace('for = "2m"\n', "")  # check judges one window
    result = run_check("--db", str(db_path), "--rules", rules_file(db_path.parent, text))
    assert result.returncode == code, result.stdout + result.stderr
    assert verdict in result.stdout
    report = json.loads(run_check("--db", str(db_path), "--rules",
                                  rules_file(db_path.parent, text), "--format", "json").stdout)
    judged = {c["rule"]: c for c in report["rules"]}
    expected = 1000 * 0.15e-6 + output_tokens * 0.6e-6
    assert judged["cost-per-run"]["value"] == pytest.approx(expected)
    assert judged["tokens-per-run"]["value"] == 1000 + output_tokens


def record_release(service, version: str, auth_failures: int, runs: int = 30) -> None:
    """``runs`` agent runs of one release (resource service.version), through the SDK."""
    provider = TracerProvider(resource=Resource.create(
        {"service.name": "support-agent", "service.version": version}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint(service), insecure=True)))
    agent_runs(provider.get_tracer("agent"), runs, auth_failures)
    provider.shutdown()


@pytest.fixture
def releases(db_path, tmp_path):
    """A shared file with two releases, 1.4.1 healthy and 1.4.2 failing auth, and the
    same telemetry as OTLP/JSON lines (as `agenttop export` writes them) and gzipped."""
    with BackgroundService(serve_settings(db_path)) as service:
        record_release(service, "1.4.1", auth_failures=0)
        middle_ns = time.time_ns()
        time.sleep(0.01)
        record_release(service, "1.4.2", auth_failures=3)
    conn = read_db(db_path)
    ids = [r[0] for r in conn.execute("SELECT trace_id FROM traces ORDER BY start_ns")]
    conn.close()
    exported = subprocess.run(
        [sys.executable, "-m", "agenttop.cli", "export", "--db", str(db_path), *ids],
        capture_output=True, check=True, timeout=120).stdout
    lines = tmp_path / "run.jsonl"
    lines.write_bytes(exported)
    packed = tmp_path / "run.json.gz"
    packed.write_bytes(gzip.compress(exported))
    return {"db": db_path, "lines": lines, "gz": packed, "middle_ns": middle_ns}


@pytest.mark.parametrize("source", ["db", "lines", "gz"])
def test_one_release_is_picked_out_of_a_shared_file_by_its_resource(releases, tmp_path,
                                                                     source):
    rules = rules_file(tmp_path)
    path = str(releases[source])
    healthy = run_check(path, "--rules", rules, "--where", "service.version=1.4.1")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "PASS: all 2 rules judged" in healthy.stdout
    failing = run_check(path, "--rules", rules, "--where", "service.version=1.4.2",
                        "--where", "service.name=support-agent", "--format", "json")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    report = json.loads(failing.stdout)
    auth = next(r for r in report["rules"] if r["rule"] == "auth-failures")
    assert auth["value"] == 3 and auth["status"] == "breached"
    nobody = run_check(path, "--rules", rules, "--where", "service.version=9.9.9")
    assert nobody.returncode == 3 and "no data" in nobody.stdout


def test_a_file_is_judged_whole_and_since_until_cut_it(releases, tmp_path):
    rules = rules_file(tmp_path)
    whole = run_check(str(releases["lines"]), "--rules", rules, "--format", "json")
    assert whole.returncode == 1  # both releases: 3 auth failures in 60 runs
    assert next(r for r in json.loads(whole.stdout)["rules"]
                if r["rule"] == "auth-failures")["value"] == 3
    middle = datetime.fromtimestamp(releases["middle_ns"] / 1e9, UTC).isoformat()
    before = run_check(str(releases["gz"]), "--rules", rules, "--until", middle)
    assert before.returncode == 0, before.stdout + before.stderr
    after = run_check(str(releases["gz"]), "--rules", rules, "--since", middle)
    assert after.returncode == 1, after.stdout + after.stderr


def test_bad_selections_and_bad_files_exit_2(releases, tmp_path):
    bad = run_check(str(releases["lines"]), "--where", "service.version")
    assert bad.returncode == 2
    assert "--where" in bad.stderr and "not KEY=VALUE" in bad.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(releases["lines"].read_bytes().splitlines()[0] + b"\n{oops\n")
    result = run_check(str(broken))
    assert result.returncode == 2
    assert f"{broken}:2: not valid JSON" in result.stderr


TOO_FEW = PROMPT_AND_AUTH + """
[[rule]]
name = "runtime-p99"
layer = "runtime"
measure = "p99_ms"
op = ">"
threshold = 5000
window = "15m"
min_samples = 1000
"""


def test_reports_for_ci_markdown_and_junit(db_path, tmp_path):
    fill(db_path, auth_failures=2)
    rules = rules_file(tmp_path, TOO_FEW)
    markdown = run_check("--db", str(db_path), "--rules", rules, "--format", "markdown")
    assert markdown.returncode == 1, markdown.stderr
    lines = markdown.stdout.splitlines()
    assert lines[0] == "### agenttop check: FAIL"
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| rule | subject | measure | value | threshold | samples | status |"
    assert table[1] == "| auth-failures | auth | failures | 2 | > 0 | 2 | ❌ breached |"
    assert table[2].startswith("| runtime-p99 | runtime | p99_ms |")
    assert table[2].endswith("| 30/1000 | ⚠️ too few samples |")
    assert table[3].startswith("| prompt-failure-rate |") and table[3].endswith("✅ holds |")
    assert lines[-1] == "**FAIL**: 1 of 3 rules breached: auth-failures"

    junit = run_check("--db", str(db_path), "--rules", rules, "--format", "junit")
    assert junit.returncode == 1, junit.stderr
    # As CI systems' JUnit readers take it.
    parsed = JUnitXml.fromstring(junit.stdout)
    outcomes = {case.name: [type(r).__name__ for r in case.result]
                for suite in parsed for case in suite}
    assert outcomes == {"prompt-failure-rate": [], "auth-failures": ["Failure"],
                        "runtime-p99": ["Skipped"]}
    suites = ElementTree.fromstring(junit.stdout)
    suite = suites.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"prompt-failure-rate", "auth-failures", "runtime-p99"}
    failure = cases["auth-failures"].find("failure")
    assert failure.get("message").startswith("failures of auth is 2, rule > 0 breaches")
    assert cases["runtime-p99"].find("skipped").get("message") == (
        "too few samples: 30 of 1000 spans")
    assert list(cases["prompt-failure-rate"]) == []  # passed: no child element
