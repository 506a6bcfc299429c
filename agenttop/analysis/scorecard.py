"""The production-readiness scorecard, filled in from what the database observed.

The scorecard has 24 items in five sections (observability, testing, security,
reliability, deployment). Telemetry can settle some of them and not others, so
every item gets one of three statuses:

- ``pass`` / ``fail``: the stored spans, logs, metric points, findings, alerts and audit
  rows say so, and the evidence column says what was counted;
- ``not_observable``: telemetry cannot tell (a runbook, a rollback plan, a test suite's
  pass rate). The scorecard never guesses these; the evidence column may still mention
  related signals that were seen.

How each observable item is decided (over everything in the file):

- logging: log records received, at least half of them structured (attributes, an event
  name or a trace context); metrics: data points received; tracing: spans received;
  alerts: at least one alert rule (the firing and resolved episodes are reported);
- schema compliance: no schema failures among the spans (the prompt layer's calls are the
  denominator);
- input validation fails when a prompt-injection phrase reached an instrumented input;
  output filtering fails when PII was found in an output value and passes when model calls
  were seen and no output carried PII;
- authentication passes when callers were turned away for missing or bad credentials
  (401, UNAUTHENTICATED...), authorization when they were refused for lack of permission
  (403, PERMISSION_DENIED...): both show the check exists and runs;
- retries: a failed call (other than an auth failure) followed, in the same trace and
  under the same parent, by a call of the same name: pass if any was retried, fail if
  failures were seen and none was;
- checkpointing: checkpoint spans on the memory layer;
- graceful degradation: among the runs (traces) with a failed step, those whose root span
  did not fail: pass if at least half of them, fail if fewer;
- health checks: traces whose root span is named like a health, liveness or readiness
  probe.

A section passes when its required items pass (all of them, or 4 of 5 for reliability),
fails when too many fail for that to be possible, and is otherwise undetermined; the
verdict is "yes" only when every section passes, "no" when any fails.

Headless (reads through an APSW connection, renders plain Markdown and JSON), so the CLI,
the TUI and the tests share it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

import apsw

from agenttop.analysis.rules import Rule
from agenttop.config import counted as _n
from agenttop.store.facts import FileFacts, Observed, read_facts

PASS, FAIL, NOT_OBSERVABLE = "pass", "fail", "not_observable"
MARKS = {PASS: "✅ pass", FAIL: "❌ fail", NOT_OBSERVABLE: "❔ not observable"}
VERDICTS = {"pass": "✅ passes", "fail": "❌ fails", "unknown": "❔ cannot tell"}


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    status: str  # PASS, FAIL or NOT_OBSERVABLE
    evidence: str


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    items: tuple[Item, ...]
    required: int | None = None  # items that must pass; None: all of them

    @property
    def needed(self) -> int:
        return len(self.items) if self.required is None else self.required

    @property
    def verdict(self) -> str:
        """"pass", "fail" (too many failed to reach ``needed``) or "unknown"."""
        passed = sum(i.status == PASS for i in self.items)
        failed = sum(i.status == FAIL for i in self.items)
        if passed >= self.needed:
            return "pass"
        if len(self.items) - failed < self.needed:
            return "fail"
        return "unknown"


@dataclass(frozen=True, slots=True)
class Scorecard:
    application: str
    observed: Observed
    sections: tuple[Section, ...] = field(default_factory=tuple)

    def count(self, status: str) -> int:
        return sum(i.status == status for s in self.sections for i in s.items)

    @property
    def ready(self) -> str:
        """"yes" when every section passes, "no" when one fails, else "unknown"."""
        verdicts = {s.verdict for s in self.sections}
        if "fail" in verdicts:
            return "no"
        return "yes" if verdicts == {"pass"} else "unknown"

    def as_dict(self) -> dict:
        return {
            "application": self.application,
            "observed": asdict(self.observed),
            "sections": [{
                "name": s.name,
                "required": "all" if s.required is None else f"{s.required}/{len(s.items)}",
                "verdict": s.verdict,
                "items": [{"item": i.name, "status": i.status, "evidence": i.evidence}
                          for i in s.items],
            } for s in self.sections],
            "score": {"passed": self.count(PASS), "failed": self.count(FAIL),
                      "not_observable": self.count(NOT_OBSERVABLE),
                      "items": sum(len(s.items) for s in self.sections)},
            "ready": self.ready,
        }


# ----------------------------------------------------------------------------- the facts

@dataclass
class _Facts(FileFacts):
    """Every count the items are decided from: what the file holds, and of its auth
    failures how many were permission refusals."""

    auth_denials: int = 0  # of the auth failures, permission refusals

    @property
    def auth_failures(self) -> int:
        return len(self.auth_failure_records)


# Lowercased, without "_", "-" and spaces: the words of a permission refusal (as opposed to
# a caller that could not be identified).
_DENIAL_WORDS = ("forbidden", "permission", "accessdenied", "scope", "notallowed")
_HTTP_CODE_KEYS = ("http.response.status_code", "http.status_code")
_RPC_CODE_KEYS = ("rpc.grpc.status_code", "rpc.response.status_code")
# The scorecard's title, the same in the UI and in the command line's report.
TITLE = "Production Readiness"


def _is_denial(attributes: dict, status_message: str) -> bool:
    for key in _HTTP_CODE_KEYS:
        if str(attributes.get(key, "")).strip() == "403":
            return True
    for key in _RPC_CODE_KEYS:
        if str(attributes.get(key, "")).strip() in ("7", "PERMISSION_DENIED"):
            return True
    text = f"{attributes.get('error.type', '')} {status_message}".lower()
    text = text.replace("_", "").replace("-", "").replace(" ", "")
    return any(word in text for word in _DENIAL_WORDS)


def _facts(conn: apsw.Connection) -> _Facts:
    stored = read_facts(conn)
    return _Facts(**{f.name: getattr(stored, f.name) for f in fields(FileFacts)},
                  auth_denials=sum(_is_denial(attributes, message)
                                   for attributes, message in stored.auth_failure_records))


# ----------------------------------------------------------------------------- the items

def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _breakdown(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items(),
                                                          key=lambda kv: (-kv[1], kv[0])))


def _observability(f: _Facts, rules: Sequence[Rule], rules_source: str) -> Section:
    o = f.observed
    if not o.logs:
        logging = Item("Structured logging implemented", FAIL, "no log records received")
    else:
        logging = Item(
            "Structured logging implemented",
            PASS if 2 * f.structured_logs >= o.logs else FAIL,
            f"{_n(o.logs, 'log record')} from {_n(f.log_services, 'service')}; "
            f"{_share(f.structured_logs, o.logs)} structured (attributes, event name or "
            "trace context)")
    if o.metric_points:
        metrics = Item("Metrics exported (Prometheus format)", PASS,
                       f"{_n(o.metric_points, 'data point')} of {_n(f.metric_names, 'metric')} "
                       "received over OTLP (the Prometheus format itself is not observable)")
    else:
        metrics = Item("Metrics exported (Prometheus format)", FAIL, "no metrics received")
    if o.spans:
        tracing = Item("Distributed tracing enabled", PASS,
                       f"{_n(o.spans, 'span')} in {_n(o.traces, 'trace')} from "
                       f"{_n(f.service_count, 'service')}; "
                       f"{_n(f.cross_service_traces, 'trace')} with spans from several "
                       "services")
    else:
        tracing = Item("Distributed tracing enabled", FAIL, "no spans received")
    dashboard = Item("Dashboard created", NOT_OBSERVABLE,
                     "a dashboard of your own is not visible in telemetry")
    episodes = (f"{len(f.alerts_firing)} firing ({', '.join(f.alerts_firing)})"
                if f.alerts_firing else "none firing")
    alerts = Item("Alerts configured", PASS if rules else FAIL,
                  f"{_n(len(rules), 'alert rule')} ({rules_source}); {episodes}, "
                  f"{_n(f.alerts_resolved, 'episode')} resolved")
    return Section("Observability", (logging, metrics, tracing, dashboard, alerts))


def _testing(f: _Facts) -> Section:
    scores = f.count("eval_score_count")
    golden = ("no golden-set results in telemetry" if not scores else
              f"evaluation scores on {_n(scores, 'span')} (mean "
              f"{f.total('eval_score_sum') / scores:.2f}) are not a golden-set pass rate")
    calls = f.count("spans", "prompt")
    schema_failures = f.count("f_schema")
    if not calls and not schema_failures:
        schema = Item("Schema compliance: 100%", NOT_OBSERVABLE, "no model calls seen")
    else:
        schema = Item("Schema compliance: 100%", FAIL if schema_failures else PASS,
                      f"{_n(schema_failures, 'schema failure')} in {_n(calls, 'model call')} "
                      f"({_share(calls - min(schema_failures, calls), calls)} compliant), "
                      "in the traffic observed")
    filtered = f.count("content_filtered")
    safety = ("test results are not in telemetry" if not filtered else
              f"test results are not in telemetry; {_n(filtered, 'response')} stopped by a "
              "content filter")
    tests = "test results are not in telemetry"
    return Section("Testing", (
        Item("Golden dataset tests: >90% pass", NOT_OBSERVABLE, golden),
        schema,
        Item("Safety tests: 100% pass", NOT_OBSERVABLE, safety),
        Item("Integration tests: All pass", NOT_OBSERVABLE, tests),
        Item("E2E tests: All pass", NOT_OBSERVABLE, tests),
    ))


def _patterns(f: _Facts, kind: str, direction: str | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for (k, d, pattern), n in f.findings.items():
        if k == kind and (direction is None or d == direction):
            out[pattern] = out.get(pattern, 0) + n
    return out


def _security(f: _Facts) -> Section:
    injections = _patterns(f, "injection")
    if injections:
        validation = Item("Input validation implemented", FAIL,
                          f"{_n(sum(injections.values()), 'prompt-injection phrase')} reached "
                          f"instrumented inputs ({_breakdown(injections)})")
    else:
        validation = Item("Input validation implemented", NOT_OBSERVABLE,
                          "no prompt-injection phrase reached an instrumented input; the "
                          "validation itself is not visible")
    leaked = _patterns(f, "pii", "output")
    calls = f.count("spans", "prompt")
    if leaked:
        filtering = Item("Output filtering implemented", FAIL,
                         f"{_n(sum(leaked.values()), 'PII finding')} in outputs "
                         f"({_breakdown(leaked)})")
    elif calls:
        echoes = sum(_patterns(f, "pii", "echo").values())
        filtering = Item("Output filtering implemented", PASS,
                         f"no PII in the outputs of {_n(calls, 'model call')}" + (
                             f" ({_n(echoes, 'output')} only repeated PII of an input)"
                             if echoes else ""))
    else:
        filtering = Item("Output filtering implemented", NOT_OBSERVABLE,
                         "no model calls or outputs seen")
    refused = sum(n for reason, n in f.audit.items() if reason != "malformed request")
    receiver = (f"; agenttop's receiver refused {_n(refused, 'call')} without a valid token"
                if refused else "")
    rejected = f.auth_failures - f.auth_denials
    if rejected:
        authentication = Item("Authentication required", PASS,
                              f"{_n(rejected, 'call')} rejected for missing or invalid "
                              f"credentials{receiver}")
    else:
        authentication = Item("Authentication required", NOT_OBSERVABLE,
                              f"no authentication failure seen{receiver}")
    if f.auth_denials:
        authorization = Item("Authorization enforced", PASS,
                             f"{_n(f.auth_denials, 'call')} refused for lack of permission")
    else:
        authorization = Item("Authorization enforced", NOT_OBSERVABLE,
                             "no permission refusal seen")
    audit_rows = sum(f.audit.values())
    audit = Item("Audit logging enabled", NOT_OBSERVABLE,
                 "your application's audit log is not visible in telemetry"
                 + (f"; agenttop's own audit table holds {_n(audit_rows, 'refused call')}"
                    if audit_rows else ""))
    return Section("Security", (validation, filtering, authentication, authorization, audit))


def _reliability(f: _Facts) -> Section:
    if f.retried:
        retry = Item("Retry logic implemented", PASS,
                     f"{f.retried:,} of {_n(f.retryable, 'failed call')} retried")
    elif f.retryable:
        retry = Item("Retry logic implemented", FAIL,
                     f"none of {_n(f.retryable, 'failed call')} retried")
    else:
        retry = Item("Retry logic implemented", NOT_OBSERVABLE, "no failed calls to retry")
    if f.checkpoints:
        checkpoint = Item("Checkpointing enabled", PASS,
                          f"{_n(f.checkpoints, 'checkpoint span')}, "
                          f"{f.checkpoint_failures:,} failed")
    else:
        checkpoint = Item("Checkpointing enabled", NOT_OBSERVABLE, "no checkpoint spans seen")
    if f.degraded_runs:
        degradation = Item(
            "Graceful degradation", PASS if 2 * f.completed_runs >= f.degraded_runs else FAIL,
            f"{f.completed_runs:,} of {_n(f.degraded_runs, 'run')} with a failed step still "
            "completed")
    else:
        degradation = Item("Graceful degradation", NOT_OBSERVABLE,
                           "no run with a failed step")
    return Section("Reliability", (
        retry,
        Item("Circuit breakers configured", NOT_OBSERVABLE,
             "an open circuit is not distinguishable from other failures"),
        checkpoint,
        degradation,
        Item("Runbook documented", NOT_OBSERVABLE, "documents are not in telemetry"),
    ), required=4)


def _deployment(f: _Facts) -> Section:
    envs = (f"environments seen: {', '.join(f.environments)}" if f.environments else
            "no deployment.environment resource attribute seen")
    if f.health_checks:
        health = Item("Health checks implemented", PASS,
                      f"{_n(f.health_checks, 'health or readiness probe')} received")
    else:
        health = Item("Health checks implemented", NOT_OBSERVABLE,
                      "no health or readiness probe seen")
    return Section("Deployment", (
        Item("Deployment documented", NOT_OBSERVABLE, "documents are not in telemetry"),
        Item("Rollback plan tested", NOT_OBSERVABLE, "rollbacks are not in telemetry"),
        Item("Environment config validated", NOT_OBSERVABLE, envs),
        health,
    ))


def build_scorecard(conn: apsw.Connection, rules: Sequence[Rule], *,
                    rules_source: str = "shipped defaults",
                    application: str | None = None) -> Scorecard:
    """Fill in the scorecard from the database behind ``conn`` (a reader's).

    ``rules`` are the alert rules in force (``rules_source`` says where they came from);
    ``application`` names the system in the title (default: its busiest root services).
    """
    with conn:  # one read transaction: every count from the same state of the file
        f = _facts(conn)
    name = application or ", ".join(f.services) or "no services seen"
    return Scorecard(name, f.observed, (
        _observability(f, rules, rules_source), _testing(f), _security(f), _reliability(f),
        _deployment(f)))


# ---------------------------------------------------------------------------- rendering

# Controls (C0, DEL, C1, bidi overrides) never reach a terminal or a Markdown viewer.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _cell(text: str) -> str:
    text = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) <= 0xFF
                       else f"\\u{ord(m.group()):04x}", text)
    return text.replace("|", "\\|")


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def observed_line(observed: Observed) -> str:
    o = observed
    counts = (f"{_n(o.traces, 'trace')} ({_n(o.spans, 'span')}), {_n(o.logs, 'log record')}, "
              f"{_n(o.metric_points, 'metric data point')}")
    if o.first_ns is None or o.last_ns is None:
        return "Nothing received yet."
    return f"Observed {_when(o.first_ns)} to {_when(o.last_ns)} UTC: {counts}."


def score_line(card: Scorecard) -> str:
    passed, failed = card.count(PASS), card.count(FAIL)
    return (f"{passed}/{passed + failed} observable items pass "
            f"({card.count(NOT_OBSERVABLE)} of "
            f"{sum(len(s.items) for s in card.sections)} not observable)")


def ready_line(card: Scorecard) -> str:
    failing = [s.name for s in card.sections if s.verdict == "fail"]
    unknown = [s.name for s in card.sections if s.verdict == "unknown"]
    if card.ready == "no":
        return f"❌ No: {', '.join(failing)} {'fails' if len(failing) == 1 else 'fail'}"
    if card.ready == "unknown":
        return ("❔ Cannot tell from telemetry: required items of "
                f"{', '.join(unknown)} are not observable")
    return "✅ Yes"


def render_markdown(card: Scorecard) -> str:
    """The scorecard, filled in: one table per section, then the score."""
    out = [f"## {TITLE}: {_cell(card.application)}", "",
           observed_line(card.observed), ""]
    for s in card.sections:
        required = "all items" if s.required is None else f"{s.required} of {len(s.items)}"
        out += [f"### {s.name} (required: {required})", "",
                "| Item | Status | Evidence |", "|------|--------|----------|"]
        out += [f"| {i.name} | {MARKS[i.status]} | {_cell(i.evidence)} |" for i in s.items]
        passed = sum(i.status == PASS for i in s.items)
        out += ["", f"{s.name}: {VERDICTS[s.verdict]} ({passed} of {s.needed} required "
                "items pass)", ""]
    out += [f"### Overall Score: {score_line(card)}", "",
            f"### Ready for Production? {ready_line(card)}", ""]
    return "\n".join(out)


def render_json(card: Scorecard) -> str:
    # ASCII only: every control or bidi character in a name arrives escaped.
    return json.dumps(card.as_dict(), indent=2) + "\n"
