"""The ingest row types are the tables' columns: a row names each value, and every name is
a column of its table, so a misplaced or misspelt value is an error, not wrong data."""

from __future__ import annotations

import pytest

from agenttop.store import open_writer
from agenttop.store.rows import LAYOUTS, PointRow, SpanRow


@pytest.fixture
def columns(tmp_path):
    conn = open_writer(tmp_path / "rows.db")
    out = {table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
           for table in LAYOUTS}
    conn.close()
    return out


@pytest.mark.parametrize("table", sorted(LAYOUTS))
def test_every_row_field_is_a_column_of_its_table(columns, table):
    layout = LAYOUTS[table]
    assert set(layout.columns) <= columns[table]
    assert layout.json <= set(layout.columns)


def test_a_row_cannot_be_built_with_a_missing_or_unknown_column():
    with pytest.raises(TypeError):
        SpanRow(trace_id="a" * 32)  # the other columns are missing
    with pytest.raises(TypeError):
        PointRow(name="m", description="", unit="", type="gauge", temporality=None,
                 monotonic=None, service="s", resource_id=1, scope="", start_ns=0,
                 time_ns=1, attributes={}, flags=0, received_ns=1, fingerprint=0,
                 valeu=3)  # typo
