"""docs/schema.md documents every table and column the migrations create: the file is a
contract with users who query it, so a column added without a word there fails here."""

from __future__ import annotations

import re
from pathlib import Path

from agenttop.store import open_writer

DOC = Path(__file__).parent.parent / "docs" / "schema.md"


def test_every_table_and_column_of_the_ddl_is_in_docs_schema(tmp_path):
    conn = open_writer(tmp_path / "schema.db")
    tables = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    columns = {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
               for table in tables}
    conn.close()
    text = DOC.read_text(encoding="utf-8")
    headings = set(re.findall(r"^#+ .*?`(\w+)`(?:, `(\w+)`)?", text, re.M))
    documented_tables = {name for pair in headings for name in pair if name}
    # The words in backquotes of each table's section: its column names.
    sections = re.split(r"^## ", text, flags=re.M)
    missing = [t for t in tables if t not in documented_tables]
    assert not missing, f"tables without a section in docs/schema.md: {missing}"
    undocumented = {}
    for table, names in columns.items():
        section = next(s for s in sections if re.match(rf"[^\n]*`{table}`", s))
        quoted = set(re.findall(r"`([\w.]+)`", section))
        undocumented[table] = [c for c in names if c not in quoted]
    assert {t: c for t, c in undocumented.items() if c} == {}, "columns not in docs/schema.md"
