"""Storage: the SQLite schema and its migrations, the batching writer, and read queries.

The SQLite file is the only interface between the receiver and any user interface.
"""

from agenttop.store.db import StoreError, open_reader, open_writer

__all__ = ["StoreError", "open_reader", "open_writer"]
