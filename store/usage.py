"""Usage counters that survive restarts: per person per UTC day, model-call timings, totals."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Integer,
    Table,
    and_,
    bindparam,
    distinct,
    func,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.db import Database
from store.sql import insert_ignore
from store.tables import Base, Image, ImageSource, Message, ModelCall, UsageDay, utcnow

# /stats percentiles are over the newest calls only (a long-running bot has millions).
TIMING_WINDOW = 2000
USAGE: Table = Base.metadata.tables["usage_days"]
MODEL_CALLS: Table = Base.metadata.tables["model_calls"]


@dataclass(frozen=True)
class DayUsage:
    """What one person used on one day."""

    model_calls: int = 0
    upload_bytes: int = 0


@dataclass(frozen=True)
class UsageStats:
    """The admin's overview."""

    accounts: int
    active_today: int
    turns: int
    images: int
    model_call_p50_s: float | None
    model_call_p95_s: float | None
    model_calls_timed: int
    database_bytes: int | None


class UsageLedger:
    """Daily counts per account ("telegram:<id>") and model-call durations."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def used(self, account: str, day: date) -> DayUsage:
        """What ``account`` used on ``day`` (zero when nothing)."""
        with self.db.read() as s:
            row = s.get(UsageDay, (account, day))
            return DayUsage() if row is None else DayUsage(row.model_calls, row.upload_bytes)

    def charge(self, account: str, day: date, model_calls: int = 0, upload_bytes: int = 0,
               max_calls: int | None = None, max_bytes: int | None = None) -> DayUsage | None:
        """Add to the day's counts unless that would pass a limit (None: no limit).

        Returns the new counts, or None (nothing added) when a limit would be passed; the
        check and the addition are one statement (an upsert whose update is conditional), so
        concurrent requests cannot both pass.
        """
        over_alone = (max_calls is not None and model_calls and model_calls > max_calls) or \
            (max_bytes is not None and upload_bytes and upload_bytes > max_bytes)
        upsert = _charge_upsert(self.db.engine.dialect.name,
                                max_calls is not None and bool(model_calls),
                                max_bytes is not None and bool(upload_bytes))
        if upsert is None or over_alone:  # the day's row is kept even when refused
            with self.db.write() as s:
                return _charge_checked(s, account, day, model_calls, upload_bytes, max_calls,
                                       max_bytes)
        with self.db.write_conn() as conn:
            row = conn.execute(upsert, {"account": account, "day": day, "calls": model_calls,
                                        "size": upload_bytes, "max_calls": max_calls,
                                        "max_bytes": max_bytes}).first()
        return None if row is None else DayUsage(int(row[0]), int(row[1]))

    def record_call(self, kind: str, seconds: float) -> None:
        """Remember how long one model call took. The row rides along with the next write
        transaction (the turn that made the call) instead of a commit of its own.
        """
        self.db.defer(MODEL_CALLS, {"kind": kind[:32], "seconds": float(seconds),
                                    "at": utcnow()})

    def stats(self, today: date) -> UsageStats:
        """Accounts seen, active today, turns, uploaded images, model-call p50/p95."""
        self.db.flush_deferred()  # this process's newest timings
        with self.db.read() as s:
            accounts = s.scalar(select(func.count(distinct(UsageDay.account)))) or 0
            active = s.scalar(select(func.count()).where(UsageDay.day == today)) or 0
            turns = s.scalar(select(func.count(Message.id))) or 0
            images = s.scalar(select(func.count(distinct(Image.sha256))).join(
                ImageSource, ImageSource.image_sha256 == Image.sha256).where(
                ImageSource.user_id.is_not(None))) or 0
            times = list(s.scalars(select(ModelCall.seconds)
                                   .order_by(ModelCall.id.desc()).limit(TIMING_WINDOW)))
        p50, p95 = (np.percentile(times, [50, 95]).tolist() if times else (None, None))
        return UsageStats(accounts, active, turns, images, p50, p95, len(times),
                          self._database_bytes())

    def _database_bytes(self) -> int | None:
        with self.db.read() as s:
            dialect = s.get_bind().dialect.name
            if dialect == "sqlite":
                count = s.connection().exec_driver_sql("PRAGMA page_count").scalar() or 0
                size = s.connection().exec_driver_sql("PRAGMA page_size").scalar() or 0
                return int(count) * int(size)
            if dialect == "postgresql":
                value = s.connection().exec_driver_sql(
                    "SELECT pg_database_size(current_database())").scalar()
                return int(value or 0)
        return None


@functools.cache
def _charge_upsert(dialect: str, calls_capped: bool, bytes_capped: bool) -> Any:
    """``charge``'s one statement, built once per dialect and set of limits: insert the day's
    counts, or add to them where every limit still holds, returning the new counts (no row:
    refused). None for dialects without ON CONFLICT DO UPDATE.
    """
    make: Any = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
    if make is None:
        return None
    calls, size = bindparam("calls", type_=Integer), bindparam("size", type_=BigInteger)
    held = []  # the limits the addition must keep
    if calls_capped:
        held.append(USAGE.c.model_calls + calls <= bindparam("max_calls", type_=Integer))
    if bytes_capped:
        held.append(USAGE.c.upload_bytes + size <= bindparam("max_bytes", type_=BigInteger))
    stmt = make(USAGE).values(account=bindparam("account"),
                              day=bindparam("day", type_=USAGE.c.day.type),
                              model_calls=calls, upload_bytes=size)
    return stmt.on_conflict_do_update(
        index_elements=[USAGE.c.account, USAGE.c.day],
        set_={"model_calls": USAGE.c.model_calls + calls,
              "upload_bytes": USAGE.c.upload_bytes + size},
        where=and_(true(), *held),
    ).returning(USAGE.c.model_calls, USAGE.c.upload_bytes)


def _charge_checked(s: Session, account: str, day: date, model_calls: int, upload_bytes: int,
                    max_calls: int | None, max_bytes: int | None) -> DayUsage | None:
    """``charge`` in three statements, for dialects without a conditional upsert (and for a
    charge that passes a limit on its own, which keeps the day's row as it did).
    """
    insert_ignore(s, UsageDay.__table__, [{"account": account, "day": day,
                                           "model_calls": 0, "upload_bytes": 0}])
    row = s.get(UsageDay, (account, day), with_for_update=True)
    assert row is not None
    calls, size = row.model_calls + model_calls, row.upload_bytes + upload_bytes
    if (max_calls is not None and model_calls and calls > max_calls) or \
            (max_bytes is not None and upload_bytes and size > max_bytes):
        return None
    row.model_calls, row.upload_bytes = calls, size
    return DayUsage(calls, size)


def next_reset(now: datetime) -> datetime:
    """When the daily counters start afresh: the next midnight UTC."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
