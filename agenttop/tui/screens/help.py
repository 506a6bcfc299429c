"""Help (``?``): every key binding of every screen, with its description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def bindings_by_id(cls: type) -> dict[str, Binding]:
    """The bindings ``cls`` has with its bases', by id (a subclass's wins), in the order
    they are declared, base classes first."""
    out: dict[str, Binding] = {}
    for klass in reversed(cls.__mro__):
        for binding in vars(klass).get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                out[binding.id] = binding
    return out


KEYS_WIDTH = 14

# Keys that widgets handle themselves, without a Binding of ours: listed for completeness.
BUILTIN: tuple[tuple[str, str], ...] = (
    ("↑ ↓", "move the cursor"),
    ("pgup pgdn", "move by a page"),
    ("ctrl+p", "command palette: screens, actions, and \"Jump to trace id\""),
)


class HelpScreen(ModalScreen[None]):
    """A modal list of the bindings, grouped by where they apply."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", id="help.close"),
    ]

    def __init__(self, sections: Sequence[tuple[str, Sequence[Binding]]],
                 settings: str = "") -> None:
        """``settings``: where the user's settings file is (its keymap names the ids)."""
        super().__init__(id="help")
        self.sections = sections
        self.settings = settings

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "agenttop keys"
            box.border_subtitle = "escape to close"
            yield Static(self._text(), id="help-text")

    def _text(self) -> Group:
        """A table per section: a description wraps under itself, not under the keys."""
        parts: list[RenderableType] = []

        if self.settings:
            parts.append(Text.assemble(
                ("Settings ", "bold"), self.settings,
                (" — theme, bell, window, and [keys] \"id\" = \"keys\" with the ids "
                 "shown dim below", "dim")))

        def section(title: str, rows: list[tuple[str, str | Text]]) -> None:
            table = Table.grid(padding=(0, 1), expand=True)
            table.add_column(width=KEYS_WIDTH, no_wrap=True)
            table.add_column(ratio=1)
            for keys, description in rows:
                table.add_row(keys, description)
            parts.extend([Text(("\n" if parts else "") + title, style="bold"), table])

        for title, bindings in self.sections:
            rows: list[tuple[str, str | Text]] = []
            for binding in bindings:
                keys = " ".join(self.app.get_key_display(binding.with_key(k))
                                for k in binding.key.split(","))
                if not binding.description or any(keys == seen for seen, _ in rows):
                    continue
                rows.append((keys, Text.assemble(
                    binding.description + (f" — {binding.tooltip}" if binding.tooltip else ""),
                    (f"  {binding.id}" if binding.id else "", "dim"))))
            section(title, rows)
        section("Also", list(BUILTIN))
        return Group(*parts)
