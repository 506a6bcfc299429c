"""Help (``?``): every key binding of every screen, with its description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

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

    def __init__(self, sections: Sequence[tuple[str, Sequence[Binding]]]) -> None:
        super().__init__(id="help")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "agenttop keys"
            box.border_subtitle = "escape to close"
            yield Static(self._text(), id="help-text")

    def _text(self) -> Text:
        out = Text(end="")
        seen: set[tuple[str, str]] = set()
        for title, bindings in self.sections:
            if out:
                out.append("\n\n")
            out.append(title, style="bold")
            for binding in bindings:
                keys = " ".join(self.app.get_key_display(binding.with_key(k))
                                for k in binding.key.split(","))
                if (title, keys) in seen or not binding.description:
                    continue
                seen.add((title, keys))
                out.append(f"\n  {keys:<14} {binding.description}")
                if binding.tooltip:
                    out.append(f" — {binding.tooltip}")
        out.append("\n\nAlso", style="bold")
        for keys, description in BUILTIN:
            out.append(f"\n  {keys:<14} {description}")
        return out
