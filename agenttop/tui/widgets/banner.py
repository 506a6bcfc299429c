"""The one-line notice under the header: waiting for data, an unreadable file, serve died."""

from __future__ import annotations

from textual.widgets import Static

from agenttop.tui.text import safe


class Banner(Static):
    """Shows the app's current notice; hidden when there is none."""

    def on_mount(self) -> None:
        # Every screen has its own banner; all of them follow the one notice of the app.
        self.watch(self.app, "notice", self._show)

    def _show(self, notice: tuple[str, str]) -> None:
        message, level = notice
        self.set_class(not message, "-hidden")
        self.set_class(level == "error", "-error")
        self.update(safe(message, width=self.app.size.width * 2 or 200))
