"""Benchmark: the migration metrics (``GET /api/v1/stats/migration``) over 100,000 publications, against a
bare ``SELECT count(*)`` of every table they read, in the same run.

    python bench/stats.py [--publications 100000] [--repeat 5] [--keep DIR]

Builds a SQLite database with the broker's migrations, then bulk-inserts realistic rows: 196 member
organisations; publications shaped after the manifests of bench/manifests/ and classified by the real
engine with the shipped categories.yaml (needs, categories, targets); one to three revisions each, with
their decision, one row per need, resources of lognormal sizes, one delivery per target and revision
(older ones done or cancelled, current ones mostly done, some pending, waiting, retrying or failed), and the
ledger of where each publication is present (national, regional, both; some already migrated, their
regional copy withdrawn). Then times the service function behind the endpoint (median of ``--repeat``
runs) next to the bare counts, prints both, their ratio, and a final JSON line.

Goals: the metrics within 5x of the bare counts, and under one second.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from classify import load_facts  # noqa: E402  (bench/classify.py: manifests -> PublicationFacts)

from broker.classification.engine import classify  # noqa: E402
from broker.classification.rules import load_rules  # noqa: E402

logger = logging.getLogger(__name__)

GOAL_RATIO = 5.0
GOAL_SECONDS = 1.0
# Rows were written yesterday: the summary's refresh only re-reads what changed since its last run.
NOW = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
TABLES = (
    "organization",
    "publication",
    "revision",
    "decision",
    "decision_need",
    "resource",
    "delivery",
    "ledger",
    "gap",
)


# Columns filled by the bulk insert, in the order of each row's tuple.
COLUMNS = {
    "organization": "id, slug, name, contact_email, remote, created_at",
    "publication": "id, organization_id, title, access, revision, category, state, created_by, created_at, "
    "updated_at",
    "revision": "id, publication_id, number, manifest, channel, created_by, created_at",
    "decision": "id, revision_id, category, rules_digest, needs, created_at",
    "decision_need": "decision_id, publication_id, need, category, platforms, rule",
    "resource": "id, revision_id, position, name, size, format, kind, inspection",
    "delivery": "id, publication_id, revision_id, revision_number, target, action, state, attempts, "
    "error_fields, remote, urls, needs, created_at, updated_at",
    "ledger": "id, publication_id, target, state, revision, remote, urls, updated_at",
    "gap": "id, need, platform, status, target_date, interim, mirror, upstream, source, created_at, "
    "updated_at",
}


def new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def profiles(rules_path: Path) -> list[dict[str, Any]]:
    """The bench manifests classified by the real engine: their needs and targets."""
    rules = load_rules(rules_path)
    found = []
    for facts in load_facts(HERE / "manifests"):
        result = classify(facts, rules)
        found.append(
            {
                "category": result.category,
                "needs": [(n.need, n.category, json.dumps(list(n.platforms)), n.rule) for n in result.needs],
                "decision": json.dumps([n.to_dict() for n in result.needs], ensure_ascii=False),
                "targets": [(t.target, json.dumps(list(t.needs)), bool(t.held_by)) for t in result.targets],
                "resources": max(1, len(facts.resources)),
                "access": facts.access,
                "digest": result.rules_digest,
            }
        )
    return found


def build(path: Path, publications: int, seed: int = 20260209) -> dict[str, int]:
    """Create the schema with the broker's migrations, then bulk-insert the rows (one transaction)."""
    from broker.db import migrate

    migrate(f"sqlite:///{path}")
    shapes = profiles(ROOT / "categories.yaml")
    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    # A throw-away database: no journal, no fsync, a large page cache while loading.
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-1000000")
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    organizations = [new_id(rng) for _ in range(196)]
    for index, org_id in enumerate(organizations):
        rows["organization"].append((org_id, f"membre-{index:03d}", f"Membre {index:03d}", None, "{}", NOW))
    # A few organisations publish a lot (metropoles, departments), most publish a little.
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(organizations))]
    empty_manifest = json.dumps({"title": "x"})
    for number in range(publications):
        shape = rng.choice(shapes)
        publication_id = new_id(rng)
        organization_id = rng.choices(organizations, weights)[0]
        revisions = rng.choices((1, 2, 3), (0.65, 0.25, 0.10))[0]
        withdrawn = rng.random() < 0.03
        rows["publication"].append(
            (
                publication_id,
                organization_id,
                f"Jeu de données {number}",
                shape["access"],
                revisions,
                shape["category"],
                "withdrawn" if withdrawn else "active",
                "bench",
                NOW,
                NOW,
            )
        )
        migrated = rng.random() < 0.2  # its regional copy already retired by an earlier migration
        for revision in range(1, revisions + 1):
            current = revision == revisions
            revision_id = new_id(rng)
            decision_id = new_id(rng)
            rows["revision"].append(
                (revision_id, publication_id, revision, empty_manifest, "api", "bench", NOW)
            )
            rows["decision"].append(
                (decision_id, revision_id, shape["category"], shape["digest"], shape["decision"], NOW)
            )
            for need, category, platforms, rule in shape["needs"]:
                rows["decision_need"].append((decision_id, publication_id, need, category, platforms, rule))
            for position in range(shape["resources"] + rng.choice((0, 0, 1))):
                size = int(math.exp(rng.gauss(13.5, 2.2)))  # median ~700 kB, a long tail of large files
                rows["resource"].append(
                    (
                        new_id(rng),
                        revision_id,
                        position,
                        f"fichier_{position}.gpkg",
                        size,
                        "gpkg",
                        "vector",
                        "{}",
                    )
                )
            for target, needs, held in shape["targets"]:
                if current:
                    state = (
                        "waiting"
                        if held
                        else rng.choices(
                            ("done", "pending", "running", "retrying", "waiting", "failed"),
                            (0.90, 0.03, 0.01, 0.01, 0.03, 0.02),
                        )[0]
                    )
                else:
                    state = rng.choice(("done", "cancelled"))
                action = "publish" if revision == 1 else "update"
                rows["delivery"].append(
                    (
                        new_id(rng),
                        publication_id,
                        revision_id,
                        revision,
                        target,
                        action,
                        state,
                        1,
                        "{}",
                        "{}",
                        "[]",
                        needs,
                        NOW,
                        NOW,
                    )
                )
        for target, _needs, held in shape["targets"]:
            if held:
                continue
            present = not withdrawn and rng.random() < 0.95
            if target == "regional" and migrated:
                present = False
            rows["ledger"].append(
                (
                    new_id(rng),
                    publication_id,
                    target,
                    "present" if present else "withdrawn",
                    revisions,
                    "{}",
                    "[]",
                    NOW,
                )
            )
    for need, platform_id in (
        ("ogc_api", "geoplateforme"),
        ("extraction", "geoplateforme"),
        ("format_cog", "geoplateforme"),
        ("access_restricted_services", "geoplateforme"),
    ):
        rows["gap"].append(
            (
                new_id(rng),
                need,
                platform_id,
                "open",
                "2027-06-30",
                "regional",
                0,
                None,
                "categories.yaml",
                NOW,
                NOW,
            )
        )
    statements = {
        table: f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(columns.split(', ')))})"
        for table, columns in COLUMNS.items()
    }
    with connection:
        connection.execute("PRAGMA foreign_keys=OFF")
        for table in TABLES:
            connection.executemany(statements[table], rows[table])
    # What `broker` deployments get from SQLite's maintenance: statistics for the query planner.
    connection.execute("ANALYZE")
    connection.execute("PRAGMA journal_mode=WAL")  # as the broker runs it
    connection.close()
    return {table: len(found) for table, found in rows.items()}


def bare_counts(url: str) -> float:
    """Seconds to ``SELECT count(*)`` every table the metrics read, in one session."""
    from sqlalchemy import text

    from broker.db import engine_for

    with engine_for(url).connect() as connection:
        start = time.perf_counter()
        for table in TABLES:
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        return time.perf_counter() - start


def metrics(url: str) -> tuple[float, dict[str, Any]]:
    """Seconds to compute the endpoint's answer with its service function (its refresh of what changed
    included, committed like a request does), and the answer."""
    from broker.db import engine_for, session_scope
    from broker.stats import service

    start = time.perf_counter()
    with session_scope(engine_for(url)) as session:
        body = service.migration_stats(session)
    return time.perf_counter() - start, body


def full_refresh(url: str) -> float:
    """Seconds to rebuild the whole summary (what the daily snapshot does, and the first answer)."""
    from broker.db import engine_for, session_scope
    from broker.stats import service

    start = time.perf_counter()
    with session_scope(engine_for(url)) as session:
        service.refresh(session, full=True)
    return time.perf_counter() - start


def touch(path: Path, count: int) -> None:
    """``count`` publications change now (a delivery ends: its ledger and delivery rows move)."""
    connection = sqlite3.connect(path)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with connection:
        connection.execute(
            "UPDATE ledger SET updated_at = ? WHERE publication_id IN "
            "(SELECT id FROM publication ORDER BY random() LIMIT ?)",
            (now, count),
        )
    connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publications", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (median kept)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="build the database in this directory, keep it"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-stats-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "broker.db"
    if path.exists():
        path.unlink()
    url = f"sqlite:///{path}"
    try:
        started = time.perf_counter()
        sizes = build(path, args.publications)
        build_seconds = time.perf_counter() - started
        print(
            f"base construite en {build_seconds:.1f} s : " + ", ".join(f"{t} {n:,}" for t, n in sizes.items())
        )

        rebuild_s = full_refresh(url)
        print(f"résumé par publication reconstruit en {rebuild_s:.2f} s (instantané quotidien)")
        metrics(url)  # warm the page cache, as a running API would have it
        bare_counts(url)
        metric_runs, count_runs = [], []
        body: dict[str, Any] = {}
        for _ in range(args.repeat):
            seconds, body = metrics(url)
            metric_runs.append(seconds)
            count_runs.append(bare_counts(url))
        metric_s = statistics.median(metric_runs)
        count_s = statistics.median(count_runs)
        touch(path, 100)
        changed_s, _ = metrics(url)
        ratio = metric_s / count_s
        met = ratio <= GOAL_RATIO and metric_s < GOAL_SECONDS
        totals = body["totals"]
        print(
            f"publications {totals['publications']:,} : nationales {totals['national']:,}, régionales "
            f"{totals['regional']:,}, les deux {totals['both']:,}, "
            f"part nationale {totals['national_share']:.1%}"
        )
        print(f"statistiques de migration : {metric_s * 1000:8.1f} ms (médiane de {args.repeat})")
        print(f"  après 100 changements   : {changed_s * 1000:8.1f} ms (ces 100 lignes rafraîchies d'abord)")
        print(f"count(*) des {len(TABLES)} tables : {count_s * 1000:8.1f} ms")
        print(
            f"rapport                   : {ratio:.2f} (objectif ≤ {GOAL_RATIO}, et < {GOAL_SECONDS} s)"
            f" -> {'atteint' if met else 'MANQUÉ'}"
        )
        summary = {
            "bench": "stats",
            "publications": args.publications,
            "rows": sizes,
            "build_seconds": round(build_seconds, 2),
            "metrics_seconds": round(metric_s, 4),
            "bare_count_seconds": round(count_s, 4),
            "metrics_after_100_changes_seconds": round(changed_s, 4),
            "full_rebuild_seconds": round(rebuild_s, 2),
            "ratio": round(ratio, 2),
            "goal_ratio": GOAL_RATIO,
            "goal_seconds": GOAL_SECONDS,
            "goal_met": met,
            "sqlite": sqlite3.sqlite_version,
            "python": platform.python_version(),
        }
        print(json.dumps(summary))
        return 0 if met else 1
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
