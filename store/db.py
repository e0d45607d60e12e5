"""Engines and sessions: one transaction per unit of work; SQLite tuned for many writers."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store.deferred import DeferredRows

logger = logging.getLogger(__name__)


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of an SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


class Database:
    """Session factories for one database URL; nothing connects until first use.

    SQLite gets WAL, foreign keys and a busy timeout, and its write transactions start with
    ``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout instead of
    failing with "database is locked" when a read transaction tries to upgrade.

    ``synchronous``: with WAL, NORMAL writes each commit to the WAL file without an fsync
    (the WAL is synced at checkpoints), so a commit costs no disk flush. A committed
    transaction then survives the process being killed (the OS holds the written pages),
    but a power cut or kernel crash may roll back the last commits (never corrupt the
    file). FULL fsyncs every commit: durable against power loss, one disk flush per turn.

    SQLite has one writer at a time. This process's writers queue on a lock of their own
    before ``BEGIN IMMEDIATE``: SQLite's busy handler polls, sleeping 1, 2, 5 ... 100 ms
    between tries, so under 50 users a turn waited p95 1.5 s for a lock held for 7 ms
    (scripts/bench_bot.py, issue 30). Writers in other processes still meet the busy timeout.

    ``defer`` queues rows that ride along with the next write transaction
    (``store/deferred.py``).
    """

    def __init__(self, url: str, busy_timeout_s: float = 30.0,
                 synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.busy_timeout_s = busy_timeout_s
        self.synchronous = synchronous
        self.engine = self._make_engine(immediate=True)
        self._read_engine = self._make_engine(immediate=False) if self.is_sqlite else self.engine
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        self._one_writer = threading.Lock()
        self.deferred = DeferredRows()

    def _make_engine(self, immediate: bool) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=40)
        engine = create_engine(
            self.url, pool_size=8, max_overflow=64, pool_timeout=self.busy_timeout_s,
            connect_args={"timeout": self.busy_timeout_s, "check_same_thread": False},
        )
        _tune_sqlite(engine, int(self.busy_timeout_s * 1000), immediate, self.synchronous)
        return engine

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed on exit, rolled back on error. The
        deferred rows queued so far are written in it too.
        """
        with self._writer_turn(), self._writer() as session, session.begin():
            yield session
            if len(self.deferred):
                self.deferred.write_into(session.connection())

    def defer(self, table: Table, row: dict[str, Any]) -> None:
        """Queue a row for the next write transaction (written at once when many wait, so
        never call it inside a write transaction).
        """
        if self.deferred.add(table, row):
            self.flush_deferred()

    def flush_deferred(self) -> None:
        """Write the deferred rows now, in a transaction of their own."""
        if len(self.deferred):
            with self.write():
                pass

    @contextmanager
    def write_conn(self) -> Iterator[Connection]:
        """``write`` as a bare Connection, for Core statements: a Session and its transaction
        cost more than the statement of a charge (130 us of 214 per transaction on SQLite).
        """
        with self._writer_turn(), self.engine.begin() as conn:
            yield conn
            if len(self.deferred):
                self.deferred.write_into(conn)

    @contextmanager
    def read_conn(self) -> Iterator[Connection]:
        """``read`` as a bare Connection, for Core statements (one snapshot, rolled back)."""
        with self._read_engine.connect() as conn, conn.begin() as transaction:
            yield conn
            transaction.rollback()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (one consistent snapshot), rolled back on exit."""
        with self._reader() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Write the deferred rows, then close every pooled connection."""
        try:
            self.flush_deferred()
        except Exception:  # they are rows whose loss is harmless (store/deferred.py)
            logger.warning("deferred rows not written at close", exc_info=True)
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """SQLite: wait for this process's other writers on a lock (woken at once), not in
        SQLite's polling busy handler. Past the busy timeout, go on and let SQLite decide.
        """
        if not self.is_sqlite:
            yield
            return
        got = self._one_writer.acquire(timeout=self.busy_timeout_s)
        try:
            yield
        finally:
            if got:
                self._one_writer.release()


def _tune_sqlite(engine: Engine, busy_ms: int, immediate: bool, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        _retry_locked(lambda: dbapi_conn.execute("PRAGMA journal_mode=WAL"), busy_ms)
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _retry_locked(call: Any, busy_ms: int) -> None:
    """Switching to WAL needs a moment without other writers; retry within the timeout."""
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            call()
            return
        except (sqlite3.OperationalError, OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
