"""The dashboard's receiver lines, under the layer cards: where ``serve`` listens, how its
forwarding goes, and how many calls it refused in the window."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from agenttop.tui.receiver import (
    NONE_YET,
    ReceiverView,
    forwarding,
    listening,
    part,
    refused_summary,
)
from agenttop.tui.text import clean


class ReceiverLine(Static):
    """Receiver, forwarding (when it forwards), refused calls, clock skew (when seen)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "receiver-line--label", "receiver-line--warn", "receiver-line--bad"}

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"receiver-line--{name}", partial=True)

    def show(self, view: ReceiverView | None, refused: dict[str, int], window: str) -> None:
        label, warn, bad = self._style("label"), self._style("warn"), self._style("bad")
        line = Text("receiver  ", style=label, end="")
        if view is None or view.state == "none":
            line.append(NONE_YET)
        else:
            # "stopped at 15:06:30" after the label, not "receiver stopped at ..."
            line.append(view.headline.removeprefix("receiver "),
                        style=bad if view.state == "gone" else "")
            security = part(view.status, "receiver").get("security")
            if view.state == "running" and security:
                line.append(f" ({clean(security)})")
            for address in listening(view.status) if view.state == "running" else ():
                line.append(f" · {address}")
        lines = [line]
        forward = forwarding(view.status if view is not None else None)
        if forward is not None:
            text, trouble = forward
            lines.append(Text.assemble(("forward   ", label), (text, warn if trouble else "")))
        lines.append(Text.assemble(("refused   ", label), (refused_summary(refused),
                                   bad if any(refused.values()) else ""), f" in {window}"))
        skewed = part(view.status if view is not None else None, "receiver").get("skewed")
        if isinstance(skewed, int) and skewed > 0:
            lines.append(Text.assemble(
                ("skew      ", label), (f"{skewed:,} spans or logs dated more than 5m ahead of "
                                        "their arrival, or before 2000", warn),
                " since the receiver started: in no window"))
        self.update(Text("\n", end="", no_wrap=True, overflow="ellipsis").join(lines))
