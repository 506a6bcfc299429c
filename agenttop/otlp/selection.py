"""One run out of shared telemetry: the records whose resource has given attribute values,
in a time range (``agenttop check --where service.version=1.4.2 --since ... --until ...``).

Applied to OTLP requests in place, before they are decoded, so a selection goes through
the receiver's path like anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _text(value: Any) -> str | None:
    """An attribute's AnyValue as the text a user types, None for arrays and maps."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which in ("int_value", "double_value"):
        number = getattr(value, which)
        return str(int(number)) if float(number).is_integer() else str(number)
    return None


@dataclass(frozen=True)
class Selection:
    """Resource attributes that must all hold, and a start-time range (inclusive)."""

    where: tuple[tuple[str, str], ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None

    @property
    def everything(self) -> bool:
        return not self.where and self.since_ns is None and self.until_ns is None

    def _resource(self, resource: Any) -> bool:
        if not self.where:
            return True
        have = {kv.key: _text(kv.value) for kv in resource.attributes}
        return all(have.get(key) == value for key, value in self.where)

    def covers(self, time_ns: int) -> bool:
        return ((self.since_ns is None or time_ns >= self.since_ns)
                and (self.until_ns is None or time_ns <= self.until_ns))

    def apply(self, signal: str, request: Any) -> None:
        """Drop from ``request`` (an Export*ServiceRequest of ``signal``) what is not
        selected: resources that do not match, records outside the range."""
        if self.everything:
            return
        resources, scopes, items = {
            "traces": ("resource_spans", "scope_spans", "spans"),
            "logs": ("resource_logs", "scope_logs", "log_records"),
            "metrics": ("resource_metrics", "scope_metrics", "metrics"),
        }[signal]
        kept_resources = []
        for resource in getattr(request, resources):
            if not self._resource(resource.resource):
                continue
            for scope in getattr(resource, scopes):
                field = getattr(scope, items)
                kept = [item for item in field if self._kept(signal, item)]
                if len(kept) != len(field):
                    del field[:]
                    field.extend(kept)
            kept_resources.append(resource)
        field = getattr(request, resources)
        if len(kept_resources) != len(field):
            del field[:]
            field.extend(kept_resources)

    def _kept(self, signal: str, item: Any) -> bool:
        if signal == "traces":
            return self.covers(item.start_time_unix_nano)
        if signal == "logs":
            return self.covers(item.time_unix_nano or item.observed_time_unix_nano)
        # A metric: keep its points in the range (a metric left with none stays, empty).
        which = item.WhichOneof("data")
        if which is None:
            return True
        points = getattr(item, which).data_points
        kept = [p for p in points if self.covers(p.time_unix_nano)]
        if len(kept) != len(points):
            del points[:]
            points.extend(kept)
        return True


EVERYTHING = Selection()
