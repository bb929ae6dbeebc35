"""Fixtures of the regional store: an intake store with real files, a real SQLite database, a connector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, func, select

import regional_store.models  # noqa: F401 - registers the tables
from connectors.base import OrganizationRef, PublicationRevision, ResourceFile
from regional_store.blobs import BlobStore
from regional_store.connector import RegionalConfig, RegionalConnector, engine_for

PUBLIC_URL = "https://broker.openig.example"

MONTPELLIER = OrganizationRef(
    id="0b8f3c2e-5d7a-4a51-9f7e-2a1c6d3e4f50",
    slug="montpellier-mediterranee-metropole",
    name="Montpellier Méditerranée Métropole",
)


@dataclass
class Env:
    """A regional store wired to an intake store, both under the test's temporary directory."""

    tmp: Path
    intake: BlobStore
    database_url: str

    @property
    def engine(self) -> Engine:
        return engine_for(self.database_url)

    def config(self, **overrides: Any) -> RegionalConfig:
        values: dict[str, Any] = {
            "root": self.tmp / "regional",
            "database_url": self.database_url,
            "public_url": PUBLIC_URL,
            "intake_root": self.intake.root,
        }
        values.update(overrides)
        return RegionalConfig(**values)

    def connector(self, **overrides: Any) -> RegionalConnector:
        return RegionalConnector(self.config(**overrides))

    def resource(self, name: str, content: bytes, **extra: Any) -> ResourceFile:
        """A hosted resource whose bytes sit in the intake store, as the broker hands it over."""
        source = self.tmp / "upload" / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(content)
        digest, size, path = self.intake.put_file(source)
        return ResourceFile(name=name, path=path, sha256=digest, size=size, **extra)

    def count(self, model: type[SQLModel]) -> int:
        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(model)).one())

    def blob_count(self) -> int:
        root = self.tmp / "regional" / "blobs"
        return sum(1 for path in root.glob("??/??/*") if path.is_file())


@pytest.fixture
def env(tmp_path: Path) -> Env:
    database_url = f"sqlite:///{tmp_path / 'regional.db'}"
    engine = engine_for(database_url)
    tables = [SQLModel.metadata.tables[name] for name in ("regional_record", "regional_file")]
    SQLModel.metadata.create_all(engine, tables=tables)
    return Env(tmp=tmp_path, intake=BlobStore(tmp_path / "intake"), database_url=database_url)


RevisionFactory = Callable[..., PublicationRevision]


@pytest.fixture
def make_revision() -> RevisionFactory:
    def make(
        resources: tuple[ResourceFile, ...] | list[ResourceFile],
        *,
        publication_id: str = "6f1d2c3b-4a59-4e8f-9b7a-1c2d3e4f5a6b",
        revision: int = 1,
        **extra: Any,
    ) -> PublicationRevision:
        values: dict[str, Any] = {
            "publication_id": publication_id,
            "revision": revision,
            "organization": MONTPELLIER,
            "title": "Pistes cyclables",
            "description": "Réseau cyclable de la métropole, mis à jour chaque trimestre.",
            "license": "lov2",
            "keywords": ("mobilite", "velo"),
            "resources": tuple(resources),
            "public_url": PUBLIC_URL,
        }
        values.update(extra)
        return PublicationRevision(**values)

    return make
