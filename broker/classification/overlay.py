"""The gap register laid over ``categories.yaml``: pure functions, no I/O.

``categories.yaml`` says what each national platform does for each need *as the file was written*; the gap
register (``broker.gaps``) says what happened since: staff marked a gap delivered, slipped its target date,
changed its interim policy, or dropped it. The rules in force are the file's rules with each gap's state
written over its cell of the matrix:

- ``open``      the cell is B, with the register's target date, upstream reference, interim policy and mirror;
- ``delivered`` the cell is A: the platform now answers the need (the note says a gap closed); when the gap
                kept a regional ``mirror``, the need is also routed to the regional store (see
                :func:`classify_with_overlay`);
- ``dropped``   the cell is C: the platform will not answer it, the regional store serves it.

The overlay is applied to the file's data and compiled again with ``rules_from_data``, so the digest of
the rules in force changes with the overlay: a decision records exactly which matrix decided it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from broker.classification.engine import classify
from broker.classification.rules import NATIONAL_PLATFORMS, Rules, rules_from_data
from broker.classification.schemas import ClassificationResult, PublicationFacts, TargetPlan

REGIONAL = "regional"
GAP_STATUSES = ("open", "delivered", "dropped")


@dataclass(frozen=True, slots=True)
class GapState:
    """What the register says of one need on one national platform."""

    need: str
    platform: str
    status: str  # open | delivered | dropped
    target_date: str | None = None  # ISO date
    upstream: str | None = None
    interim: str = "hold"  # regional | hold | degrade
    mirror: bool = False


def overlay_data(raw: Mapping[str, Any], gaps: Iterable[GapState]) -> dict[str, Any]:
    """The catalogue data with each gap's state written over its cell (a deep copy; ``raw`` is untouched).

    A gap whose need or platform the file no longer has is ignored: the file decides what exists.
    """
    data: dict[str, Any] = copy.deepcopy(dict(raw))
    needs = data.get("needs") or {}
    for gap in gaps:
        need = needs.get(gap.need)
        if need is None or gap.platform not in NATIONAL_PLATFORMS:
            continue
        cells = need.setdefault("platforms", {})
        before = dict(cells.get(gap.platform) or {})
        source = before.get("source") or "registre des lacunes"
        if gap.status == "delivered":
            cell: dict[str, Any] = {
                "category": "A",
                "source": source,
                "note": "Lacune fermée : la plateforme répond désormais à ce besoin"
                + (f" ({gap.upstream})" if gap.upstream else ""),
            }
            if gap.upstream:
                cell["upstream"] = gap.upstream
            # The regional copy stays as a mirror only where the regional store can serve the need.
            if gap.mirror and need.get("regional") is True:
                cell["mirror"] = True
        elif gap.status == "dropped":
            cell = {
                "category": "C",
                "source": source,
                "note": "Lacune abandonnée : la plateforme n'y répondra pas",
            }
        else:
            # Start from the file's cell, change only what the register says differently: a register that
            # agrees with the file leaves the data, hence the digest, as they are.
            cell = dict(before) if before.get("category") == "B" else {"category": "B", "source": source}
            for key, value in (("target_date", gap.target_date), ("upstream", gap.upstream)):
                if value != before.get(key):
                    if value is None:
                        cell.pop(key, None)
                    else:
                        cell[key] = value
            if gap.interim != before.get("interim"):
                cell["interim"] = gap.interim
            if bool(gap.mirror) != bool(before.get("mirror", False)):
                cell["mirror"] = bool(gap.mirror)
        cells[gap.platform] = cell
    return data


@functools.lru_cache(maxsize=32)
def _overlay(base: Rules, gaps: tuple[GapState, ...]) -> Rules:
    data = overlay_data(base.raw, gaps)
    return rules_from_data(data, base.source)


def overlay_rules(base: Rules, gaps: Sequence[GapState]) -> Rules:
    """The rules in force: ``base`` with the register laid over it (compiled once per distinct register).

    When the register changes nothing (every gap as the file says), the result has ``base``'s digest.
    """
    key = tuple(sorted(set(gaps), key=lambda g: (g.need, g.platform)))
    if not key:
        return base
    rules = _overlay(base, key)
    return base if rules.digest == base.digest else rules


def mirrored(rules: Rules) -> dict[str, tuple[str, ...]]:
    """Need id -> the national platforms whose category-A cell keeps a regional mirror."""
    found: dict[str, tuple[str, ...]] = {}
    for need_id, need in rules.needs.items():
        platforms = tuple(p for p, e in need.platforms.items() if e.category == "A" and e.mirror)
        if platforms and need.regional:
            found[need_id] = platforms
    return found


def classify_with_overlay(facts: PublicationFacts, rules: Rules) -> ClassificationResult:
    """:func:`classify`, then the regional mirrors kept by delivered gaps.

    The engine routes a category-A need only to its national platforms; a gap delivered with
    ``mirror: true`` keeps the regional copy serving too, so every later revision keeps it (otherwise the
    next revision would withdraw the mirror).
    """
    result = classify(facts, rules)
    mirrors = mirrored(rules)
    if not mirrors:
        return result
    kept = [n.need for n in result.needs if n.need in mirrors and n.category == "A"]
    if not kept:
        return result
    needs = tuple(
        replace(n, reason=n.reason.rstrip(".") + " ; la copie régionale est gardée en miroir.")
        if n.need in kept
        else n
        for n in result.needs
    )
    targets = {t.target: t for t in result.targets}
    regional = targets.get(REGIONAL)
    regional_needs = list(regional.needs) if regional else []
    for need in kept:
        if need not in regional_needs:
            regional_needs.append(need)
    regional_needs.sort(key=rules.need_index.__getitem__)
    targets[REGIONAL] = TargetPlan(REGIONAL, tuple(regional_needs), regional.held_by if regional else ())
    ordered = tuple(targets[t] for t in ("datagouv", "geoplateforme", REGIONAL) if t in targets)
    return replace(result, needs=needs, targets=ordered)
