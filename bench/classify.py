"""Benchmark: classification decisions per second on one core, against a bare dict lookup per need.

    python bench/classify.py [--seconds 3] [--categories FILE]

Builds PublicationFacts from the manifests in bench/manifests/ (format and kind given as the intake
inspection would report them), classifies them in a loop, then runs a baseline in the same process:
for each publication, look each of its derived need ids up in a plain dict. Prints both rates, their
ratio, and a final JSON line. Goal: at least 20,000 decisions (classified revisions) per second.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from broker.classification.engine import classify
from broker.classification.rules import Rules, load_rules
from broker.classification.schemas import PublicationFacts, ResourceFacts

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = Path(__file__).resolve().parent / "manifests"
GOAL = 20_000


def facts_from_manifest(manifest: dict[str, Any]) -> PublicationFacts:
    """The facts the broker derives from a manifest once its files are inspected."""
    resources = tuple(
        ResourceFacts(
            name=r.get("file") or r["url"].rsplit("/", 1)[-1],
            format=r.get("format"),
            kind=r.get("kind"),
            remote="url" in r,
            sync=r.get("sync"),
        )
        for r in manifest.get("resources", [])
    )
    return PublicationFacts(
        access=manifest.get("access", "open"),
        services=tuple(manifest.get("services", ())),
        portals=tuple(manifest.get("portals", ())),
        channel=manifest.get("channel", "api"),
        resources=resources,
        keywords=tuple(manifest.get("keywords", ())),
        themes=tuple(manifest.get("themes", ())),
        features=tuple(manifest.get("features", ())),
        harvested_from=manifest.get("harvested_from"),
    )


def load_facts(folder: Path) -> list[PublicationFacts]:
    return [
        facts_from_manifest(yaml.safe_load(path.read_text(encoding="utf-8")))
        for path in sorted(folder.glob("*.yaml"))
    ]


def pin_one_core() -> int | None:
    """Run on a single CPU so the number means "per core"; not every OS allows it."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def rate(one_pass: Callable[[], int], seconds: float) -> tuple[float, int, float]:
    """Call ``one_pass`` (which returns how many decisions it made) until ``seconds`` have gone."""
    one_pass()  # warm up caches
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        done += one_pass()
        now = time.perf_counter()
    elapsed = now - start
    return done / elapsed, done, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--categories", type=Path, default=ROOT / "categories.yaml")
    args = parser.parse_args(argv)

    cpu = pin_one_core()
    rules: Rules = load_rules(args.categories)
    batch = load_facts(MANIFESTS)
    if not batch:
        print(f"no manifest in {MANIFESTS}", file=sys.stderr)
        return 2

    results = [classify(facts, rules) for facts in batch]
    need_lists = [tuple(d.need for d in result.needs) for result in results]
    needs_per_pass = sum(len(ids) for ids in need_lists)
    for path, result in zip(sorted(MANIFESTS.glob("*.yaml")), results, strict=True):
        targets = ", ".join(
            t.target + (f" (attend {'/'.join(t.held_by)})" if t.held_by else "") for t in result.targets
        )
        print(f"{path.stem:<22} catégorie {result.category}  {len(result.needs):>2} besoins  -> {targets}")

    def classify_pass() -> int:
        for facts in batch:
            classify(facts, rules)
        return len(batch)

    # Baseline: what a decision would cost if the needs were already known and each one only had to
    # be looked up in a plain dict.
    table = {need_id: (need.id, need.group) for need_id, need in rules.needs.items()}

    def baseline_pass() -> int:
        for ids in need_lists:
            for need_id in ids:
                table[need_id]
        return len(need_lists)

    decisions_per_s, decisions, elapsed = rate(classify_pass, args.seconds)
    baseline_per_s, baseline_decisions, baseline_elapsed = rate(baseline_pass, args.seconds)
    ratio = baseline_per_s / decisions_per_s
    need_decisions_per_s = decisions_per_s * needs_per_pass / len(batch)

    print()
    print(f"classification : {decisions_per_s:>12,.0f} décisions/s ({need_decisions_per_s:,.0f} besoins/s)")
    print(f"référence dict : {baseline_per_s:>12,.0f} décisions/s (une recherche par besoin dérivé)")
    print(f"rapport        : la classification coûte {ratio:.1f} fois la recherche dans un dict")
    print(f"objectif       : {GOAL:,} décisions/s -> {'atteint' if decisions_per_s >= GOAL else 'MANQUÉ'}")
    summary = {
        "bench": "classify",
        "manifests": len(batch),
        "needs_per_decision": round(needs_per_pass / len(batch), 2),
        "decisions": decisions,
        "seconds": round(elapsed, 3),
        "decisions_per_second": round(decisions_per_s),
        "need_decisions_per_second": round(need_decisions_per_s),
        "baseline_decisions": baseline_decisions,
        "baseline_seconds": round(baseline_elapsed, 3),
        "baseline_decisions_per_second": round(baseline_per_s),
        "ratio_baseline_over_classify": round(ratio, 2),
        "goal_decisions_per_second": GOAL,
        "goal_met": decisions_per_s >= GOAL,
        "cpu": cpu,
        "python": platform.python_version(),
        "rules_digest": rules.digest,
    }
    print(json.dumps(summary))
    return 0 if decisions_per_s >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
