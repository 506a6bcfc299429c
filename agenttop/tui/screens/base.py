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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

import apsw
from textual.screen import Screen

from agenttop.tui.commands import ScreenCommands

if TYPE_CHECKING:
    from agenttop.tui.app import AgentTopApp

Job = Callable[[apsw.Connection], Any]


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
