"""Schema versions under Alembic, run programmatically (works from an installed package)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from store.db import Database
from store.errors import SchemaTooNewError

logger = logging.getLogger(__name__)
# Alembic announces its context on every check at INFO; our own log line says what changed.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(db: Database) -> Config:
    """An Alembic config pointing at the packaged migrations and this database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def current_revision(db: Database) -> str | None:
    """The database's schema revision (None: empty database)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(db: Database) -> str:
    """'current', 'behind' (upgrade needed) or raise SchemaTooNewError."""
    current = current_revision(db)
    head = head_revision()
    if current == head:
        return "current"
    known = {rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaTooNewError(
            f"the database is at schema revision {current}, which this version of RS-CapRet "
            f"does not know (newest known: {head}): it was upgraded by a newer version. "
            "Run that newer version, or point CAPRET_DATABASE_URL at another database.")
    return "behind"


def upgrade(db: Database) -> tuple[str | None, str]:
    """Bring the schema to head; returns (revision before, revision after)."""
    before = current_revision(db)
    if check_schema(db) == "current":
        return before, head_revision()
    config = alembic_config(db)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    logger.info("database schema upgraded from %s to %s", before, head_revision())
    return before, head_revision()
