"""The SQLite file, owned here: its schema, every row layout and every statement.

The file is the only interface between the receiver and any user interface, and a
contract with users who query it (docs/schema.md). Nothing outside this package executes
SQL, and this package imports nothing of ``otlp``, ``analysis`` or ``tui``.

- ``schema``, ``db``: the migrations, opening the file (writer or reader);
- ``rows``: the ingest rows (one NamedTuple per table), the ``Batch`` that carries them,
  and the vocabulary of the layer and failure columns; ``writer``: the single writer;
- ``rollups``: per-minute layer rollups, written at ingest and read for health;
- ``metrics``: metric points by window; ``queries``: traces, spans, findings and logs
  for the UI; ``alerts``: alert identity and episodes; ``audit``: refused calls;
- ``status``: the receiver's heartbeat; ``retention``: pruning;
- ``transfer``: whole traces for export and import; ``facts``: what the scorecard counts.
"""

from agenttop.store.db import StoreError, open_reader, open_writer

__all__ = ["StoreError", "open_reader", "open_writer"]
