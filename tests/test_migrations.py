from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from webapp.database import alembic_config, current_revision, head_revision, upgrade
from webapp.models import metadata


def test_upgrade_head_reaches_the_newest_revision(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == []


def test_upgrade_again_changes_nothing(engine: Engine) -> None:
    before = current_revision(engine)
    assert upgrade(engine) == (before, before)


def test_every_table_is_created(engine: Engine) -> None:
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())


def test_downgrade_to_base_and_back(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    command.downgrade(alembic_config(fresh_engine), "base")
    assert current_revision(fresh_engine) is None
    assert inspect(fresh_engine).get_table_names() == ["alembic_version"]
    assert upgrade(fresh_engine) == (None, head_revision())
