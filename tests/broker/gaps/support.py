"""An in-process broker on a fresh data directory, for service-level tests of gaps, migrations and metrics.

The database is a real SQLite file brought up by the Alembic migrations; files go to a real regional store
under the test's directory; deliveries run in this process (``deliveries.service.run``), so a test decides
when each one happens. Celery messages are recorded instead of sent: the queue itself is exercised by the
end-to-end tests (tests/broker/migration/test_migration_e2e.py).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.auth.principal import Principal

ORG = "sete-agglopole-mediterranee"

STAFF = Principal(
    subject="staff-openig",
    username="marie.staff",
    email="marie@openig.org",
    roles=frozenset({"staff"}),
    organizations=(),
    client_id=None,
    service_account=False,
    issuer="test",
)


def geojson(name: str = "Piste", features: int = 2) -> bytes:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"nom": f"{name} {i}", "largeur_m": 2 + i},
                "geometry": {"type": "LineString", "coordinates": [[3.69 + i / 100, 43.40], [3.70, 43.41]]},
            }
            for i in range(features)
        ],
    }
    return json.dumps(collection, ensure_ascii=False).encode("utf-8")


def manifest(title: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "organization": ORG,
        "title": title,
        "description": "Aménagements cyclables de l'agglomération, mis à jour chaque année.",
        "license": "lov2",
        "keywords": ["mobilite", "velo"],
        "frequency": "annual",
        "contact": {"name": "Service SIG", "email": "sig@example.fr"},
        "access": "open",
        "services": ["download", "wfs"],
        # On-demand extraction (IDGO's extractor): B on the Géoplateforme, served regionally meanwhile.
        "features": ["extraction"],
        "resources": [{"file": "pistes.geojson", "title": "Pistes (GeoJSON)"}],
    }
    data.update(changes)
    return data


class InProcessBroker:
    def __init__(self, data_dir: Path, sent: list[tuple[str, list[Any]]]) -> None:
        self.data_dir = data_dir
        self.sent = sent

    def publish(self, title: str, **changes: Any) -> str:
        from broker.config import get_settings
        from broker.db import session_scope
        from broker.intake.staging import Staging
        from broker.publications import service as publications
        from regional_store.blobs import BlobStore

        settings = get_settings()
        staging = Staging(BlobStore(settings.files_dir), settings.max_upload_bytes)
        staging.add("pistes.geojson", io.BytesIO(geojson(title)))
        with session_scope() as session:
            accepted = publications.accept(session, STAFF, manifest(title, **changes), staging, "api")
            return publications.create(session, STAFF, accepted, "api").id

    def run_pending(self, target: str | None = None) -> int:
        """Run every pending delivery (of ``target``) once, here; how many ran."""
        from broker.db import session_scope
        from broker.deliveries import repository
        from broker.deliveries import service as deliveries

        with session_scope() as session:
            due = [d.id for d in repository.search(session, state="pending", target=target, limit=10_000)]
        for delivery_id in due:
            deliveries.run(delivery_id)
        return len(due)

    def view(self, publication_id: str) -> dict[str, Any]:
        from broker.db import session_scope
        from broker.publications import service as publications

        with session_scope() as session:
            return publications.view(session, publications.get(session, publication_id))

    def count(self, table: str) -> int:
        from sqlalchemy import text

        from broker.db import session_scope

        with session_scope() as session:
            return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., InProcessBroker]]:
    """Factory: ``broker_env(categories=None, env=None)`` -> an :class:`InProcessBroker` (migrated, one
    organisation registered, the gap register synchronised with categories.yaml)."""
    from broker import worker
    from broker.classification import service as classification
    from broker.config import reset_settings

    sent: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(worker, "send", lambda task, args, **_: sent.append((task, list(args))))
    for key in list(os.environ):
        if key.startswith("BROKER_"):
            monkeypatch.delenv(key)

    def make(categories: Path | None = None, env: dict[str, str] | None = None) -> InProcessBroker:
        data_dir = tmp_path / "data"
        data_dir.mkdir(exist_ok=True)
        monkeypatch.setenv("BROKER_DATA_DIR", str(data_dir))
        monkeypatch.setenv("BROKER_PUBLIC_URL", "http://127.0.0.1:8000")
        monkeypatch.setenv("BROKER_REDIS_URL", "redis://127.0.0.1:9/0")  # never used: `send` records
        if categories is not None:
            monkeypatch.setenv("BROKER_CATEGORIES", str(categories))
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        reset_settings()
        from broker.db import migrate, session_scope
        from broker.gaps import service as gaps
        from broker.organizations import repository as organizations_repository
        from broker.organizations import service as organizations

        migrate()
        with session_scope() as session:
            if organizations_repository.get_by_slug(session, ORG) is None:
                organizations.create(session, ORG, "Sète Agglopôle Méditerranée")
        gaps.sync_at_startup()
        return InProcessBroker(data_dir, sent)

    yield make
    reset_settings()
    classification._rules.cache_clear()


def use_categories(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Point the broker at another categories.yaml (what a restart with an edited file does)."""
    from broker.config import reset_settings

    monkeypatch.setenv("BROKER_CATEGORIES", str(path))
    reset_settings()


def edited_categories(tmp_path: Path, edit: Callable[[dict[str, Any]], None], name: str) -> Path:
    """A copy of the shipped categories.yaml with ``edit`` applied to its data."""
    import yaml

    from broker.classification.rules import SHIPPED_RULES_PATH

    data = yaml.safe_load(SHIPPED_RULES_PATH.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / name
    # Dates stay strings, as the file writes them.
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def settle(broker: InProcessBroker, *, rounds: int = 60) -> None:
    """Run the deliveries that are due (pending, or retrying and due) until none is left, here."""
    import time

    from broker.db import session_scope
    from broker.deliveries import repository
    from broker.deliveries import service as deliveries

    for _ in range(rounds):
        with session_scope() as session:
            due = [
                d.id
                for state in ("pending", "retrying")
                for d in repository.search(session, state=state, limit=10_000)
            ]
        if not due:
            return
        for delivery_id in due:
            deliveries.run(delivery_id)
        time.sleep(0.2)
    raise AssertionError("deliveries did not settle")


def advance_until(predicate: Callable[[], bool], broker: InProcessBroker, *, rounds: int = 40) -> None:
    """Alternate migration ticks and deliveries until ``predicate()`` holds."""
    from broker.migration import service as migration

    for _ in range(rounds):
        migration.advance()
        settle(broker)
        if predicate():
            return
    raise AssertionError("the migration did not get there")
