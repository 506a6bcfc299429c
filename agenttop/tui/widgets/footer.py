"""The footer of every screen: Textual's, laid out again only when its keys change.

Textual's Footer rebuilds its keys (a widget each, styled one by one) whenever the
screen's bindings are updated: on every screen switch and focus change, even when the
same keys come back. That was about a third of a screen switch; here the footer compares
the keys it would show with those it shows and rebuilds only when they differ.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[tuple[str, str, bool], ...] | None = None

    def bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen and screen.app.app_focus:
            keys = tuple((binding.key, binding.description, enabled)
                         for _, binding, enabled, _ in screen.active_bindings.values()
                         if binding.show)
            if keys == self._shown:
                return
            self._shown = keys
        super().bindings_changed(screen)
