"""The alert evaluator as it runs inside ``agenttop serve``.

Every few seconds: read each layer's and metric's figures for the windows the rules use,
step the alert state machine, write new episodes (and the current values of firing ones)
through the single writer, and hand each transition to the ``--on-alert`` command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import apsw
import orjson

from agenttop.analysis.evaluator import AlertEvaluator, Transition, attributes_match
from agenttop.analysis.health import evaluation_health, layer_health, series_health
from agenttop.analysis.hooks import AlertCommand
from agenttop.analysis.rules import Rule
from agenttop.store import open_reader
from agenttop.store.alerts import load_firing, refresh_episode, resolve_episode, start_episode
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.store.series import metric_series, total_series
from agenttop.store.status import bump_version, data_version
from agenttop.store.writer import Writer

log = logging.getLogger(__name__)


def record(conn: apsw.Connection, transitions: Iterable[Transition]) -> None:
    """Write episodes: a firing transition opens one, a resolved one closes it."""
    for t in transitions:
        if t.state == "firing":
            start_episode(conn, t.key, layer=t.rule.layer, metric=t.rule.metric,
                          measure=t.rule.measure, op=t.rule.op, value=t.value,
                          threshold=t.threshold, window_s=t.rule.window_s,
                          started_ns=t.started_ns, message=t.message)
        elif not resolve_episode(conn, t.key, at_ns=t.at_ns, value=t.value, message=t.message):
            log.debug("no firing row to resolve for alert %s", t.key)


def update_values(conn: apsw.Connection, firing: Mapping[object, Transition]) -> None:
    """Refresh the value of firing episodes (``AlertEvaluator.firing``)."""
    for t in firing.values():
        refresh_episode(conn, t.key, started_ns=t.started_ns, value=t.value, at_ns=t.at_ns)


def _attributes_match(rule: Rule, attributes: str) -> bool:
    """``attributes_match`` on a series' stored attributes (JSON text)."""
    if not rule.attributes:
        return True
    try:
        parsed = orjson.loads(attributes)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and attributes_match(rule, parsed)


class AlertMonitor:
    """Evaluates ``rules`` against the database that ``writer`` writes."""

    def __init__(
        self,
        db: Path,
        writer: Writer,
        rules: list[Rule],
        command: AlertCommand | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db = db
        self.writer = writer
        self.evaluator = AlertEvaluator(rules)
        self.command = command
        self.clock = clock
        self._reader = None
        self._metric_rules = [r for r in rules if r.metric]
        # The figures of the last evaluation and what they were read at (data version,
        # minute): with nothing new in the file and the same minute, they are judged again
        # as they are (time still counts for ``for`` and ``keep_firing_for``).
        self._figures: tuple | None = None
        self._read_at: tuple[int, int] | None = None
        # Metric rules with more series than they judge: name -> (judged, series in all).
        self.capped: dict[str, tuple[int, int]] = {}
        # The pending alerts after the last evaluation, as the receiver row reports them
        # (replaced whole, so another thread reads one consistent list).
        self.pending: list[dict] = []

    def restore(self) -> None:
        """Resume the episodes that were firing when the receiver last stopped."""
        self.evaluator.restore(self.writer.call(load_firing).result(30))

    def tick(self) -> list[Transition]:
        """One evaluation; blocking (SQLite), so callers run it in a thread."""
        if not self.evaluator.rules:
            return []
        now = self.clock()
        with self._open():  # one snapshot for every figure
            read_at = (data_version(self._reader), now // MINUTE_NS)
            fresh = read_at != self._read_at or self._figures is None
            if fresh:
                self._figures = self.read_figures(now)
                self._read_at = read_at
        layers, metrics, evals = self._figures
        transitions = self.evaluator.evaluate(layers, metrics, now, evals,
                                              partial=set(self.capped))
        firing = self.evaluator.firing
        self.pending = [{"key": str(p.key), "since_ns": p.since_ns, "for_s": p.rule.for_s,
                         "message": p.message} for p in self.evaluator.pending]

        def write(conn) -> None:
            record(conn, transitions)
            update_values(conn, firing)
            version = data_version(conn)
            bump_version(conn)  # readers show alerts
            if self._read_at is not None and self._read_at[0] == version:
                # Nothing else was written since the figures were read: this write alone
                # is no reason to read them again.
                self._read_at = (version + 1, self._read_at[1])

        if transitions or (fresh and firing):
            self.writer.call(write).result(30)
        for transition in transitions:
            # A resolution's message says "resolved: …" itself.
            log.warning("alert %s: %s", transition.state,
                        transition.message.removeprefix(f"{transition.state}: "))
            if self.command is not None:
                self.command.notify(transition)
        return transitions

    def _open(self) -> apsw.Connection:
        """The evaluator's reader, opened on first use."""
        if self._reader is None:
            self._reader = open_reader(self.db)
        return self._reader

    def read_figures(self, now: int) -> tuple:
        """Every figure the rules judge: layers, the series of each metric rule (at most
        its ``max_series``, most recently active first), evaluations."""
        self._open()
        windows = sorted(self.evaluator.windows)
        layers = layer_health(self._reader, now, windows)
        ids: dict[int, None] = {}
        capped: dict[str, tuple[int, int]] = {}
        for rule in self._metric_rules:
            judged = 0
            for series in metric_series(self._reader, rule.metric, now - rule.window_s
                                        * SECOND_NS, rule.service):  # type: ignore[arg-type]
                if not _attributes_match(rule, series.attributes):
                    continue
                if judged == rule.max_series:
                    capped[rule.name] = (judged, total_series(self._reader, rule.metric))
                    break
                ids[series.series_id] = None
                judged += 1
        for name in capped.keys() - self.capped.keys():
            log.warning("rule %s judges the %s most recently active of %s series of its "
                        "metric (max_series)", name, f"{capped[name][0]:,}",
                        f"{capped[name][1]:,}")
        self.capped = capped
        metrics = series_health(self._reader, list(ids), now, windows) if ids else {}
        evals = (evaluation_health(self._reader, now, windows)
                 if any(r.evaluation for r in self.evaluator.rules) else None)
        return layers, metrics, evals

    def status(self) -> dict:
        """For the receiver row: alerts whose breach has not yet lasted their ``for``, and
        the metric rules judging fewer series than their metric has."""
        return {"pending": self.pending,
                "capped": [{"rule": name, "judged": judged, "series": total}
                           for name, (judged, total) in sorted(self.capped.items())]}

    def close(self) -> None:
        if self.command is not None:
            self.command.close(10)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
