"""Schema under Alembic: upgrade on open, refuse a newer schema, or an old one when asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from store import SchemaTooNewError, StoreConfig, StoreError, open_store
from store.db import Database
from store.schema import check_schema, current_revision, head_revision, upgrade
from store.tables import Base


def test_open_upgrades_an_empty_database_to_head(tmp_path: Path, database_url: str) -> None:
    store = open_store(StoreConfig(data_dir=str(tmp_path / "data")), database_url)
    assert current_revision(store.db) == head_revision()
    assert upgrade(store.db) == (head_revision(), head_revision())  # idempotent
    store.close()


def test_migrations_match_the_models(tmp_path: Path, database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = open_store(StoreConfig(data_dir=str(tmp_path / "data")), database_url)
    with store.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.close()
    assert diff == []


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path, database_url: str) -> None:
    config = StoreConfig(data_dir=str(tmp_path / "data"))
    open_store(config, database_url).close()
    db = Database(database_url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_from_the_future'"))
    db.dispose()
    with pytest.raises(SchemaTooNewError, match="newer version"):
        open_store(config, database_url)


def test_old_schema_without_auto_upgrade_is_refused(tmp_path: Path, database_url: str) -> None:
    db = Database(database_url)
    (tmp_path / "data").mkdir(exist_ok=True)
    assert check_schema(db) == "behind"
    db.dispose()
    with pytest.raises(StoreError, match="capret db upgrade"):
        open_store(StoreConfig(data_dir=str(tmp_path / "data"), auto_upgrade=False),
                   database_url)
