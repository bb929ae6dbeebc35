"""The Alembic migrations build exactly the schema the models declare, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import broker.all_models  # noqa: F401  (every table on the metadata)
from broker.db import migrate


def _differences(url: str) -> list[Any]:
    migrate(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    assert _differences(f"sqlite:///{tmp_path / 'broker.db'}") == []


@pytest.mark.servers
def test_postgresql_schema_matches_the_models(postgres_server: Any) -> None:
    assert _differences(postgres_server.new_database()) == []


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    migrate(url)
    assert _differences(url) == []
