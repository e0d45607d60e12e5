"""Rows that ride along with the next write transaction instead of paying for their own.

A model call's timing (``model_calls``, for /stats) is known a moment before the turn that
made the call is written; a transaction of its own cost each message a commit (and, on SQLite,
a turn at the one writer's lock). Queued here, it is inserted by the process's next write
transaction, which is that turn's. Only rows whose loss is harmless belong here: a killed
process loses the few not yet written, and a row that fails to insert is dropped (logged)
rather than retried, so it can never fail every later write.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Connection, Table, insert

logger = logging.getLogger(__name__)


class DeferredRows:
    """A thread-safe queue of rows per table, written in bulk into a caller's transaction."""

    def __init__(self, max_rows: int = 1000) -> None:
        # Past this many queued rows ``add`` says so, and the caller writes them at once.
        self.max_rows = max_rows
        self._rows: dict[Table, list[dict[str, Any]]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def add(self, table: Table, row: dict[str, Any]) -> bool:
        """Queue a row; True when the queue is full and should be written now."""
        with self._lock:
            self._rows.setdefault(table, []).append(row)
            self._count += 1
            return self._count >= self.max_rows

    def __len__(self) -> int:
        return self._count

    def write_into(self, conn: Connection) -> None:
        """Insert every queued row on ``conn`` (one statement per table), inside its open
        transaction; on failure the rows are dropped and the error raised.
        """
        with self._lock:
            taken, self._rows, self._count = self._rows, {}, 0
        try:
            for table, rows in taken.items():
                conn.execute(insert(table), rows)
        except Exception:
            logger.warning("dropped %d deferred rows", sum(map(len, taken.values())))
            raise
