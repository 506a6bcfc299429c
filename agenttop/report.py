"""Plain-text and JSON reports for the command line (``agenttop check``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from agenttop.analysis.baseline import Comparison
from agenttop.analysis.evaluator import Check
from agenttop.analysis.health import LayerHealth
from agenttop.config import format_duration, format_ms
from agenttop.store.queries import ClockSkew
from agenttop.store.rows import LAYERS, SKEW_TOLERANCE_NS


def _value(check: Check) -> str:
    value = check.observation.value
    if value is None:
        return "-"
    measure = check.rule.measure
    if measure.endswith("_rate"):
        return f"{value:.1%}"
    if measure.endswith("_ms"):
        return format_ms(value)
    return f"{value:g}"


def _threshold(check: Check) -> str:
    rule = check.rule
    if rule.measure.endswith("_rate"):
        return f"{rule.op} {rule.threshold:.1%}"
    if rule.measure.endswith("_ms"):
        return f"{rule.op} {format_ms(rule.threshold)}"
    return f"{rule.op} {rule.threshold:g}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ) + "\n"


def _when(at_ns: int) -> str:
    return datetime.fromtimestamp(at_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _skew_line(skew: ClockSkew) -> str:
    parts = []
    for n, what in ((skew.spans_ahead, "spans dated ahead of arrival"),
                    (skew.logs_ahead, "log records dated ahead of arrival"),
                    (skew.spans_ancient, "spans dated before 2000"),
                    (skew.logs_ancient, "log records dated before 2000")):
        if n:
            parts.append(f"{n:,} {what}")
    return ("clock skew: " + ", ".join(parts) + f" (more than "
            f"{format_duration(SKEW_TOLERANCE_NS // 10**9)} off): in no window\n")


def _verdict_line(checks: list[Check], result: str, at_ns: int | None,
                  newest_ns: int | None, window_s: int, compared: list[Comparison]) -> str:
    regressions = [c.name for c in compared if c.status == "regression"]
    if result == "fail":
        breached = [c for c in checks if c.status == "breached"]
        parts = []
        if breached:
            parts.append(f"{len(breached)} of {len(checks)} rules breached: "
                         + ", ".join(str(c.key) for c in breached))
        if regressions:
            parts.append(f"{len(regressions)} regressions: " + ", ".join(regressions))
        return "FAIL: " + "; ".join(parts)
    if result == "pass":
        held = f", and all {len(compared)} comparisons hold" if compared else ""
        return f"PASS: all {len(checks)} rules judged, and each holds{held}"
    if at_ns is None:
        return "INCONCLUSIVE: no data in the file"
    unjudged = [f"{c.key} ({c.status}: {c.observation.samples} of {c.rule.min_samples} "
                f"{c.observation.unit or 'samples'})" if c.status == "too few samples"
                else f"{c.key} ({c.status})" for c in checks if c.status != "ok"]
    unjudged += [f"{c.name} ({c.note})" for c in compared if c.status == "inconclusive"]
    line = (f"INCONCLUSIVE: {len(unjudged)} of {len(checks) + len(compared)} rules and "
            "comparisons could not be judged: " + ", ".join(unjudged)) if compared else (
        f"INCONCLUSIVE: {len(unjudged)} of {len(checks)} rules could not be judged: "
        + ", ".join(unjudged))
    if newest_ns is not None and newest_ns < at_ns - window_s * 10**9:
        line += (f"\n  the newest record is dated {_when(newest_ns)}, before the window: "
                 "replayed or imported data? pass --until")
    return line


def render_check(db: str | Path, window_s: int, at_ns: int | None,
                 layers: dict[tuple[str, int], LayerHealth], checks: list[Check],
                 result: str, skew: ClockSkew, newest_ns: int | None, output: str,
                 comparisons: list[Comparison] | None = None,
                 baseline: str | None = None) -> str:
    compared = comparisons or []
    verdict_line = _verdict_line(checks, result, at_ns, newest_ns, window_s, compared)
    if output == "markdown":
        return _markdown(str(db), window_s, at_ns, checks, result, verdict_line, compared,
                         baseline)
    if output == "junit":
        return _junit(str(db), window_s, at_ns, checks, verdict_line, compared)
    if output == "json":
        return json.dumps({
            "db": str(db),
            "window_s": window_s,
            "at_ns": at_ns,
            "verdict": result,
            "ok": result == "pass",
            "clock_skew": asdict(skew),
            "layers": {layer: asdict(h) for (layer, _), h in sorted(layers.items())},
            "rules": [{
                "rule": c.rule.name, "key": str(c.key), "subject": c.observation.subject,
                "measure": c.rule.measure, "op": c.rule.op, "threshold": c.rule.threshold,
                "value": c.observation.value, "samples": c.observation.samples,
                "min_samples": c.rule.min_samples, "status": c.status,
            } for c in checks],
            "baseline": baseline,
            "comparisons": [asdict(c) for c in compared],
        }, indent=2) + "\n"

    if at_ns is None:
        head = f"{db}: no data yet\n\n"
    else:
        head = f"{db}: {format_duration(window_s)} window ending {_when(at_ns)}\n\n"
    layer_rows = [["layer", "spans", "failures", "rate", "p50", "p99", "by failure"]]
    for layer in LAYERS:
        h = layers.get((layer, window_s))
        if h is None:
            continue
        rate = "-" if h.failure_rate is None else f"{h.failure_rate:.1%}"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(h.by_failure.items()))
        layer_rows.append([layer, str(h.spans), str(h.failures), rate, format_ms(h.p50_ms),
                           format_ms(h.p99_ms), kinds])
    rule_rows = [["rule", "subject", "measure", "value", "threshold", "samples", "status"]]
    for c in checks:
        status = "BREACHED" if c.status == "breached" else c.status
        samples = str(c.observation.samples)
        if c.rule.min_samples:
            samples += f"/{c.rule.min_samples}"
        rule_rows.append([c.rule.name, c.observation.subject, c.rule.measure, _value(c),
                          _threshold(c), samples, status])
    body = _table(layer_rows) + "\n" if len(layer_rows) > 1 else ""
    skew_line = _skew_line(skew) if skew.total else ""
    compared_text = _comparisons_text(compared, baseline) if baseline else ""
    return (head + body + _table(rule_rows) + "\n" + compared_text + skew_line
            + verdict_line + "\n")


def _figure(measure: str, value: float | None) -> str:
    if value is None:
        return "-"
    if measure == "failure_rate" or measure.startswith("failures."):
        return f"{value:.1%}"
    if measure.endswith("_ms"):
        return format_ms(value)
    return f"{value:.4g}"


def _change(c: Comparison) -> str:
    if c.base is None or c.run is None:
        return "-"
    if c.measure == "failure_rate" or c.measure.startswith("failures."):
        return f"{(c.run - c.base) * 100:+.1f} pts"
    if c.base:
        return f"{(c.run - c.base) / abs(c.base):+.0%}"
    return f"{c.run - c.base:+.4g}"


def _comparison_rows(compared: list[Comparison]) -> list[list[str]]:
    return [[c.subject, c.measure, _figure(c.measure, c.base), _figure(c.measure, c.run),
             _change(c), "-" if c.p_value is None else f"{c.p_value:.2g}",
             c.status.upper() if c.status == "regression" else c.status,
             c.note] for c in compared]


def _comparisons_text(compared: list[Comparison], baseline: str) -> str:
    shown = [c for c in compared if c.status != "ok"]
    held = len(compared) - len(shown)
    head = f"compared with {baseline}: {held} of {len(compared)} comparisons hold\n"
    if not shown:
        return head + "\n"
    rows = [["subject", "measure", "baseline", "run", "change", "p", "status", ""]]
    return head + _table(rows + _comparison_rows(shown)) + "\n"


_MARK = {"ok": "✅ holds", "breached": "❌ breached", "too few samples": "⚠️ too few samples",
         "no data": "⚠️ no data"}


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def _samples(check: Check) -> str:
    text = str(check.observation.samples)
    return text + (f"/{check.rule.min_samples}" if check.rule.min_samples else "")


def _markdown(source: str, window_s: int, at_ns: int | None, checks: list[Check],
              result: str, verdict_line: str, compared: list[Comparison],
              baseline: str | None) -> str:
    """For a CI step summary: the verdict, then every rule, breached ones first."""
    when = "no data" if at_ns is None else (
        f"{format_duration(window_s)} window ending {_when(at_ns)}")
    lines = [f"### agenttop check: {result.upper()}", "",
             f"`{_cell(source)}` · {when}", "",
             "| rule | subject | measure | value | threshold | samples | status |",
             "|---|---|---|---:|---|---:|---|"]
    order = {"breached": 0, "too few samples": 1, "no data": 1, "ok": 2}
    for c in sorted(checks, key=lambda c: order[c.status]):
        lines.append("| " + " | ".join(_cell(x) for x in (
            str(c.key), c.observation.subject, c.rule.measure, _value(c), _threshold(c),
            _samples(c), _MARK[c.status])) + " |")
    if baseline:
        shown = [c for c in compared if c.status != "ok"]
        lines += ["", f"Compared with `{_cell(baseline)}`: {len(compared) - len(shown)} of "
                  f"{len(compared)} comparisons hold."]
        if shown:
            lines += ["", "| subject | measure | baseline | run | change | p | status |",
                      "|---|---|---:|---:|---:|---:|---|"]
            lines += ["| " + " | ".join(_cell(x) for x in row[:6]) + " | "
                      + _cell(f"{row[6]} {row[7]}".strip()) + " |"
                      for row in _comparison_rows(shown)]
    head, *rest = verdict_line.split("\n")
    word, _, detail = head.partition(": ")
    lines += ["", f"**{word}**: {_cell(detail)}", *(_cell(r) for r in rest)]
    return "\n".join(lines) + "\n"


def _junit(source: str, window_s: int, at_ns: int | None, checks: list[Check],
           verdict_line: str, compared: list[Comparison]) -> str:
    """JUnit XML, one test case per rule (per series of a metric rule): a breached rule
    fails, one that could not be judged is skipped with why, so CI shows each natively."""
    from xml.etree import ElementTree as ET

    failures = (sum(c.status == "breached" for c in checks)
                + sum(c.status == "regression" for c in compared))
    skipped = (sum(c.status in ("too few samples", "no data") for c in checks)
               + sum(c.status == "inconclusive" for c in compared))
    counts = {"tests": str(len(checks) + len(compared)), "failures": str(failures),
              "errors": "0", "skipped": str(skipped)}
    suites = ET.Element("testsuites", name="agenttop check", **counts)
    suite = ET.SubElement(suites, "testsuite", name=f"agenttop check {source}", **counts,
                          timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("window", format_duration(window_s)),
                        ("window_end", "" if at_ns is None else _when(at_ns)),
                        ("verdict", verdict_line.split("\n")[0])):
        ET.SubElement(properties, "property", name=name, value=value)
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"agenttop.{c.observation.subject}",
                             name=str(c.key), time="0")
        what = (f"{c.rule.measure} of {c.observation.subject} is {_value(c)}, rule "
                f"{_threshold(c)} breaches; {_samples(c)} {c.observation.unit or 'samples'}")
        if c.status == "breached":
            failure = ET.SubElement(case, "failure", message=what, type="breached")
            failure.text = c.rule.description or what
        elif c.status == "too few samples":
            ET.SubElement(case, "skipped", message=(
                f"too few samples: {c.observation.samples} of {c.rule.min_samples} "
                f"{c.observation.unit or 'samples'}"))
        elif c.status == "no data":
            ET.SubElement(case, "skipped", message="no data in the window")
    for row, comparison in zip(_comparison_rows(compared), compared, strict=True):
        case = ET.SubElement(suite, "testcase", classname=f"agenttop.baseline.{row[0]}",
                             name=comparison.name, time="0")
        what = (f"{row[1]} of {row[0]}: baseline {row[2]}, run {row[3]} ({row[4]}, "
                f"p = {row[5]})")
        if comparison.status == "regression":
            ET.SubElement(case, "failure", message=what, type="regression").text = what
        elif comparison.status == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {comparison.note}")
    ET.indent(suites)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(suites, encoding="unicode") + "\n")
