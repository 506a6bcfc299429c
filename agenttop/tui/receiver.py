"""What the UI says about the receiver (``agenttop serve``) writing the file: its state,
where it listens, its forwarding and the calls it refused.

Pure and headless, so that every screen says it the same way and tests can pin the words.
The state comes from the receiver's heartbeat row (``agenttop.store.status``) and, under
``agenttop run``, from the serve child's exit: one phrase per state, whichever told.

Everything here comes from the file, which anyone may have written: values are cleaned of
control characters, checked for type, and rendered by the caller as literal text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agenttop.store.status import ReceiverStatus
from agenttop.tui import fmt
from agenttop.tui.text import clean

State = Literal["running", "stopped", "gone", "none"]
NONE_YET = "no receiver has written to this file yet"

# Reasons of the ``audit`` table (agenttop/otlp/audit.py) by the kind of refusal they are.
REFUSAL_KINDS = {"missing token": "unauthenticated", "wrong token": "unauthenticated",
                 "malformed request": "malformed", "too large": "too large",
                 "body too slow": "too slow"}


@dataclass(frozen=True)
class ReceiverView:
    state: State
    headline: str  # a short phrase for the header, on every screen
    problem: str = ""  # a line for the error banner when the receiver is not running
    address: str = ""  # its OTLP/gRPC address, when it said
    status: dict | None = None  # what it reports about itself, by part


def part(status: dict | None, name: str) -> dict:
    """``status[name]`` when it is a dict (a hostile or older file may hold anything)."""
    value = (status or {}).get(name)
    return value if isinstance(value, dict) else {}


def number(value: object) -> int:
    """A count from the file: an int, or 0 for anything else (NaN, text, a list...)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    try:
        return int(value)
    except (ValueError, OverflowError):
        return 0


def receiver_view(status: ReceiverStatus | None, now_ns: int,
                  exited: str | None = None) -> ReceiverView:
    """The receiver's state as of ``now_ns``.

    ``exited``: why the receiver process is known to be gone (``agenttop run`` knows when
    its serve child exits, before the heartbeat goes stale); the receiver then counts as
    not running, and the reason is added to the banner.
    """
    if status is None:
        return ReceiverView("none", "no receiver yet", problem=clean(exited or ""))
    address = clean(part(status.status, "receiver").get("grpc") or "")
    state = status.state(now_ns)
    if state == "running" and exited:
        state = "gone"
    reason = f": {clean(exited)}" if exited else ""
    if state == "running":
        return ReceiverView("running", f"receiving on {address}" if address else
                            "receiver running", address=address, status=status.status)
    if state == "stopped":
        when = f"receiver stopped at {fmt.clock(status.stopped_ns, millis=False)}"
        return ReceiverView("stopped", when, problem=when + reason if exited else "",
                            address=address, status=status.status)
    headline = f"receiver not responding since {fmt.clock(status.heartbeat_ns, millis=False)}"
    why = reason or f" (no heartbeat for {fmt.ago(now_ns - status.heartbeat_ns)})"
    return ReceiverView("gone", headline, problem=headline + why, address=address,
                        status=status.status)


def change_notice(old: ReceiverView | None, new: ReceiverView
                  ) -> tuple[str, str, str] | None:
    """(title, message, severity) of the toast for a change of state, or None.

    Not for the first view (nothing changed), nor between "none" and "stopped" (a file
    opened after its receiver stopped).
    """
    if old is None or old.state == new.state:
        return None
    if new.state == "running":
        title = "Receiver started" if old.state == "none" else "Receiver is back"
        return title, new.headline, "information"
    if new.state == "gone":
        return "Receiver not responding", new.problem, "error"
    if new.state == "stopped" and old.state == "running":
        return "Receiver stopped", new.problem or new.headline, "warning"
    return None


def refused_summary(by_reason: dict[str, int]) -> str:
    """``3 unauthenticated, 1 malformed``: refused calls by kind, most first; "none"."""
    kinds: dict[str, int] = {}
    for reason, n in by_reason.items():
        kind = REFUSAL_KINDS.get(reason, reason)
        kinds[kind] = kinds.get(kind, 0) + n
    parts = [f"{n:,} {clean(kind)}" for kind, n in
             sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])) if n]
    return ", ".join(parts) or "none"


def listening(status: dict | None) -> list[str]:
    """Where the receiver listens besides OTLP/gRPC: ``http 127.0.0.1:4318``, ..."""
    out = []
    for name, label in (("http", "http"), ("prometheus", "prometheus")):
        address = part(status, name).get("address")
        if address:
            out.append(f"{label} {clean(address)}")
    return out


def forwarding(status: dict | None) -> tuple[str, bool] | None:
    """The forwarding line and whether it is in trouble, or None when not forwarding.

    ``→ grpc://host:4317 ok, 0 queued``; ``→ grpc://host:4317 retrying: <last error>,
    1,204 queued, 12 dropped`` (trouble: retrying, or anything dropped).
    """
    forward = part(status, "forward")
    if not forward:
        return None
    state = clean(forward.get("state") or "unknown")
    queued, dropped = number(forward.get("queued")), number(forward.get("dropped"))
    error = forward.get("last_error")
    text = f"→ {clean(forward.get('url') or '?')} {state}"
    if state == "retrying" and error:
        text += f": {clean(error)}"
    text += f", {queued:,} queued"
    if dropped:
        text += f", {dropped:,} dropped"
    return text, state == "retrying" or dropped > 0
