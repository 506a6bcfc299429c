"""A DataTable of fixed-width columns plus one that takes whatever width they leave."""

from __future__ import annotations

from typing import ClassVar

from textual.widgets import DataTable


class FlexTable(DataTable):
    """``COLUMNS`` are (key, label, width); the ``FLEX`` column (width 0) fills the rest."""

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    FLEX: ClassVar[str] = ""
    FLEX_MIN: ClassVar[int] = 16

    def on_mount(self) -> None:
        for key, label, width in self.COLUMNS:
            self.add_column(label, key=key, width=width or self.FLEX_MIN)
        self.fit_columns()

    def on_resize(self) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        fixed = sum(w for _, _, w in self.COLUMNS) + 2 * self.cell_padding * len(self.COLUMNS)
        width = max(self.FLEX_MIN, self.size.width - fixed - 2)
        column = self.columns.get(self.FLEX)  # type: ignore[call-overload]
        if column is not None and column.width != width:
            column.width = width
            self._require_update_dimensions = True
            self.refresh()
