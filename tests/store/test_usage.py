"""Usage counters and the call log: one statement per charge, timings that ride along."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from store import Store
from store.db import Database
from store.tables import ModelCall, UsageDay

DAY = date(2026, 12, 7)


def _calls_seen_by_another_process(store: Store) -> int:
    """Model-call rows as a second connection pool (another worker) sees them."""
    other = Database(store.db.url)
    try:
        with other.read() as s:
            return int(s.scalar(select(func.count()).select_from(ModelCall)) or 0)
    finally:
        other.dispose()


def test_charge_checks_and_adds_each_limit(store: Store) -> None:
    ledger = store.usage
    for _ in range(2):
        assert ledger.charge("telegram:1", DAY, model_calls=1, max_calls=2) is not None
    assert ledger.charge("telegram:1", DAY, model_calls=1, max_calls=2) is None
    assert ledger.charge("telegram:1", DAY, upload_bytes=300, max_bytes=500) is not None
    assert ledger.charge("telegram:1", DAY, upload_bytes=300, max_bytes=500) is None
    assert ledger.charge("telegram:1", DAY, model_calls=5) is not None  # no limit: admins
    assert ledger.used("telegram:1", DAY).model_calls == 7
    assert ledger.used("telegram:1", DAY).upload_bytes == 300
    assert ledger.charge("telegram:1", date(2026, 12, 8), model_calls=1, max_calls=2)


def test_a_charge_past_the_limit_on_its_own_is_refused_but_counts_the_person(
        store: Store) -> None:
    assert store.usage.charge("telegram:2", DAY, upload_bytes=900, max_bytes=500) is None
    assert store.usage.used("telegram:2", DAY).upload_bytes == 0
    with store.db.read() as s:
        assert s.scalar(select(func.count()).select_from(UsageDay)) == 1


def test_concurrent_charges_never_pass_the_limit_together(store: Store) -> None:
    passed: list[bool] = []
    start = threading.Barrier(12)

    def charge() -> None:
        start.wait()
        passed.append(store.usage.charge("telegram:3", DAY, model_calls=1, max_calls=5)
                      is not None)

    threads = [threading.Thread(target=charge) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(passed) == [False] * 7 + [True] * 5
    assert store.usage.used("telegram:3", DAY).model_calls == 5


def test_a_timing_rides_along_with_the_next_write(store: Store) -> None:
    store.usage.record_call("generate", 0.25)
    assert _calls_seen_by_another_process(store) == 0  # no transaction of its own
    user = store.repo.get_or_create_user("telegram", 4)  # a write: the timing goes with it
    store.repo.append_turn(user.id, "user", ["hello"])
    assert _calls_seen_by_another_process(store) == 1
    assert len(store.db.deferred) == 0


def test_stats_and_close_write_the_queued_timings(store: Store) -> None:
    store.usage.record_call("generate", 0.5)
    assert store.usage.stats(DAY).model_calls_timed == 1  # stats writes them first
    store.usage.record_call("retrieve", 0.1)
    store.close()
    assert _calls_seen_by_another_process(store) == 2


def test_a_failed_write_keeps_the_queued_timings(store: Store) -> None:
    store.usage.record_call("generate", 0.5)
    with pytest.raises(RuntimeError), store.db.write():
        raise RuntimeError("the turn failed")
    assert len(store.db.deferred) == 1
    store.db.flush_deferred()
    assert _calls_seen_by_another_process(store) == 1


def test_many_queued_timings_are_written_without_waiting_for_a_turn(store: Store) -> None:
    for _ in range(store.db.deferred.max_rows):
        store.usage.record_call("generate", 0.01)
    assert len(store.db.deferred) == 0
    assert _calls_seen_by_another_process(store) == store.db.deferred.max_rows
