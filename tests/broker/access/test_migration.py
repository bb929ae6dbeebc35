"""Migration 0002 (access requests) up and down, on SQLite and PostgreSQL, with its partial unique index:
one pending request per person and publication, any number of decided ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError

import broker.db


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(broker.db.__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def insert_request(connection: sa.Connection, request_id: str, status: str) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO access_request (id, publication_id, subject, reason, status, created_at) "
            "VALUES (:id, 'p1', 'marc-sub', 'Étude', :status, CURRENT_TIMESTAMP)"
        ),
        {"id": request_id, "status": status},
    )


def check_migration(url: str) -> None:
    config = alembic_config(url)
    # Only up to this migration, so later ones (other domains) do not take part.
    command.upgrade(config, "0002")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO organization (id, slug, name, remote, created_at) "
                    "VALUES ('o1', 'sete', 'Sète', '{}', CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO publication (id, organization_id, title, access, revision, category, state, "
                    "created_at, updated_at) VALUES ('p1', 'o1', 'Réseau', 'restricted', 1, 'C', 'active', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            insert_request(connection, "r1", "refused")
            insert_request(connection, "r2", "cancelled")
            insert_request(connection, "r3", "pending")
        with pytest.raises(IntegrityError), engine.begin() as connection:
            insert_request(connection, "r4", "pending")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("access_request")}
        assert columns == {
            "id", "publication_id", "subject", "email", "username", "reason", "status",
            "decided_by", "decision_note", "created_at", "decided_at",
        }  # fmt: skip
    finally:
        engine.dispose()
    command.downgrade(config, "0001")
    engine = sa.create_engine(url)
    try:
        assert "access_request" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    command.upgrade(config, "0002")  # and back up again, cleanly


def test_on_sqlite(tmp_path: Path) -> None:
    check_migration(f"sqlite:///{tmp_path / 'broker.db'}")


@pytest.mark.servers
def test_on_postgresql(postgres_server: Any) -> None:
    new_database: Callable[[], str] = postgres_server.new_database
    check_migration(new_database())
