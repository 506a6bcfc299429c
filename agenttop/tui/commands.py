"""Command palette entries (``ctrl+p``) beyond the app's system commands.

The system commands (``AgentTopApp.get_system_commands``) already offer every screen,
pause/resume and the help. ``AgentTopCommands`` (the app's) adds "Jump to trace id…" (type
or paste a trace id or a prefix of one: the trace opens, or a notice says there is none)
and the bell toggle; ``ScreenCommands`` (each live screen's ``COMMANDS``) offers the
actions the screen declares in its ``palette()``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from agenttop.store.queries import find_trace_ids
from agenttop.tui.text import clean

if TYPE_CHECKING:
    from agenttop.tui.app import AgentTopApp

_HEX = re.compile(r"[0-9a-fA-F]{4,32}")
JUMP = "Jump to trace id…"


class TraceIdPrompt(ModalScreen[str | None]):
    """Asks for a trace id (or a prefix of one)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="jump.cancel"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Trace id (or the start of one), enter to open:", id="jump-label")
        yield Input(placeholder="e.g. 4bf92f35", id="jump-input")

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


def jump_to_trace(app: AgentTopApp, text: str | None) -> None:
    """Open the trace ``text`` names (an id or a prefix), or say there is none."""
    wanted = (text or "").strip().lower()
    if not wanted:
        return
    if not _HEX.fullmatch(wanted):
        app.notify(f"not a trace id: {clean(wanted)[:40]}", title="Jump to trace",
                   severity="warning", markup=False)
        return

    def find() -> None:
        try:
            ids = app.source.read(lambda conn: find_trace_ids(conn, wanted, limit=2))
        except Exception as e:  # no file yet, unreadable: say it, never crash
            app.call_from_thread(app.notify, f"cannot read the database: {e}",
                                 title="Jump to trace", severity="error", markup=False)
            return
        app.call_from_thread(_jumped, app, wanted, ids)

    app.run_worker(find, thread=True, exit_on_error=False, group="jump")


def _jumped(app: AgentTopApp, wanted: str, ids: list[str]) -> None:
    if not ids:
        app.notify(f"no trace {wanted}", title="Jump to trace", severity="warning",
                   markup=False)
        return
    if len(ids) > 1 and wanted not in ids:
        app.notify(f"{wanted} starts more than one trace; opening the newest",
                   title="Jump to trace", markup=False)
    app.open_trace(wanted if wanted in ids else ids[0])


class _Commands(Provider):
    """Entries from ``commands()``: (name, help, callback)."""

    def commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        return []

    async def discover(self) -> Hits:
        for name, help_text, callback in self.commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for name, help_text, callback in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, text=name, help=help_text)


class AgentTopCommands(_Commands):
    """Jump to a trace, and the bell."""

    @property
    def agenttop(self) -> AgentTopApp:
        return self.app  # type: ignore[return-value]

    def prompt_jump(self) -> None:
        self.app.push_screen(TraceIdPrompt(), partial(jump_to_trace, self.agenttop))

    def commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        out: list[tuple[str, str, Callable[[], Any]]] = [
            (JUMP, "Open a trace by its id or a prefix of it", self.prompt_jump),
        ]
        toggle_bell = getattr(self.app, "action_toggle_bell", None)
        if toggle_bell is not None:
            out.append(("Toggle alert bell", "Ring the bell when alerts fire (b)",
                        toggle_bell))
        return out

    async def search(self, query: str) -> AsyncIterator[Hit]:
        wanted = query.strip()
        if _HEX.fullmatch(wanted):
            yield Hit(1.0, f"Jump to trace {wanted}",
                      partial(jump_to_trace, self.agenttop, wanted),
                      text=f"Jump to trace {wanted}", help="Open the trace with this id")
        async for hit in super().search(query):
            yield hit


class ScreenCommands(_Commands):
    """The actions the screen the palette was opened on declares (its ``palette()``)."""

    def commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        palette = getattr(self.screen, "palette", None)
        return [(name, help_text, getattr(self.screen, f"action_{action}"))
                for name, help_text, action in (palette() if palette else [])]
