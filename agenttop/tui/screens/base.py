"""``LiveScreen``: a screen whose data the app's refresh loop reads and hands to it.

The contract between a screen and the loop (``AgentTopApp.request_refresh``):

1. ``collect()`` runs on the UI thread and returns a job: a function of a read-only
   connection that captures everything it needs (filter, window, ids) by value, or None
   when the screen wants nothing this time;
2. the job runs in the loop's thread worker, never on the UI thread, and must not touch
   widgets;
3. ``apply(result)`` runs on the UI thread inside one ``batch_update``, only if the
   screen is still mounted and its ``generation`` is the one the job was made for: a
   result for an old filter is dropped, and the loop runs again at once.

The loop asks for a job when the screen is shown, when it is ``dirty`` (the user changed
what it shows: a filter, the window; or it has never loaded), and, unless paused, when the
file changed (``data_changes.version``) or the minute did since the data it shows was read
(``read_at``). With nothing new, nothing is read again: ``tick`` runs every refresh
interval for what only the clock changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import apsw
from rich.style import Style
from rich.text import Text
from textual.screen import Screen

from agenttop.analysis.health import WINDOWS_S
from agenttop.config import format_duration
from agenttop.tui.commands import ScreenCommands

if TYPE_CHECKING:
    from agenttop.tui.app import AgentTopApp

Job = Callable[[apsw.Connection], Any]


def window_tabs(selected_s: int, windows: Sequence[int] = WINDOWS_S) -> Text:
    """``Window  1m [5m] 15m``: the windows to choose from, each clicked to choose it
    (the screen's ``set_window`` action), the chosen one marked."""
    head = Text("Window ", end="")
    for w in windows:
        label = format_duration(w)
        chosen = w == selected_s
        head.append(f"[{label}]" if chosen else f" {label} ",
                    style=Style(reverse=chosen, meta={"@click": f"screen.set_window({w})"}))
        head.append(" ")
    return head


def next_window(window_s: int, windows: Sequence[int] = WINDOWS_S) -> int:
    """The window ``w`` goes to from ``window_s``."""
    i = windows.index(window_s) if window_s in windows else -1
    return windows[(i + 1) % len(windows)]


class LiveScreen(Screen):
    """A screen fed by the refresh loop."""

    COMMANDS: ClassVar[set[Any]] = {ScreenCommands}
    dirty: bool = True
    generation: int = 0
    # (data version, minute) of the data shown: read again only when either moved.
    read_at: tuple[int | None, int] | None = None

    def palette(self) -> list[tuple[str, str, str]]:
        """This screen's entries in the command palette: (name, help, action name)."""
        return []

    @property
    def agenttop(self) -> AgentTopApp:
        return cast("AgentTopApp", self.app)

    def collect(self) -> Job | None:
        """The job for this refresh (UI thread); None for nothing."""
        return None

    def apply(self, result: Any) -> None:
        """Show a job's result (UI thread, inside a batch update)."""

    def copy_target(self) -> tuple[str, str] | None:
        """What ``y`` copies here: (what it is, its text), or None for nothing."""
        return None

    def tick(self, now_ns: int) -> None:
        """Every refresh interval, with or without new data: what only the clock changes
        (UI thread; no reads)."""

    def invalidate(self) -> None:
        """What the screen shows changed: refresh now, even while paused."""
        self.generation += 1
        self.dirty = True
        self.agenttop.request_refresh()

    def on_screen_resume(self) -> None:
        self.agenttop.request_refresh()
