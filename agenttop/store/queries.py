"""Read queries over the store that more than one command needs."""

from __future__ import annotations

import apsw

from agenttop.store.db import scalar


def latest_data_ns(conn: apsw.Connection) -> int | None:
    """The newest span start, log or metric point time in the file, or None when empty."""
    times = [
        scalar(conn, "SELECT max(start_ns) FROM traces"),
        scalar(conn, "SELECT max(time_ns) FROM logs"),
        scalar(conn, "SELECT max(time_ns) FROM metric_points"),
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None
