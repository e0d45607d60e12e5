"""Store fixtures: a fresh database per test, on SQLite and (when configured) PostgreSQL.

With CAPRET_TEST_POSTGRES_URL set (an admin URL of a reachable server), every test taking
``database_url`` also runs on PostgreSQL in its own fresh database and FAILS if the server
cannot be reached. Without it, those runs are skipped and the summary says SQLite only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from store import Store, StoreConfig, open_store

POSTGRES_ENV = "CAPRET_TEST_POSTGRES_URL"
_backends_run: set[str] = set()


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV, "").strip() or None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        _backends_run.add("sqlite")
        yield f"sqlite:///{tmp_path / 'data' / 'capret.sqlite3'}"
        return
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip(f"PostgreSQL run skipped: {POSTGRES_ENV} is not set")
    yield from fresh_postgres(admin)


def fresh_postgres(admin: str) -> Iterator[str]:
    name = f"capret_test_{uuid.uuid4().hex[:12]}"
    try:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc}")
    _backends_run.add("postgresql")
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def store_config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(data_dir=str(tmp_path / "data"))


@pytest.fixture
def store(store_config: StoreConfig, database_url: str) -> Iterator[Store]:
    """A freshly opened store (schema upgraded) on the parametrised database."""
    opened = open_store(store_config, database_url)
    yield opened
    opened.close()


def png(seed: int, size: int = 8) -> bytes:
    """A small PNG image, distinct for each seed."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def blob_files(store: Store) -> set[str]:
    return set(store.blobs.all_shas())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _backends_run:
        return
    if postgres_admin_url() is None:
        terminalreporter.write_line(
            f"store tests: SQLite only ({POSTGRES_ENV} not set; PostgreSQL runs skipped)",
            yellow=True)
    else:
        terminalreporter.write_line(
            f"store tests: ran on {' and '.join(sorted(_backends_run))}", green=True)
