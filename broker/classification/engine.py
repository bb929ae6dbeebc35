"""Pure classification: a revision's facts and the rules in force give its needs, categories and targets.

How a decision is made (no I/O, no clock, same input -> same output, in the same order):

1. **Derive the needs.** The derivation rules of ``categories.yaml`` are tried in file order against the
   facts; each matching rule adds its needs. A need derived by several rules cites the *first* one
   (``NeedDecision.rule``).
2. **Decide each need** from its row of the matrix (national platforms ``datagouv``, ``geoplateforme``):

   - some platform is **A** -> category A, ``platforms`` = the A platforms;
   - else some platform is **B** -> category B, ``platforms`` = the B platforms, and one ``GapRef``
     per B platform (target date, upstream reference, interim policy);
   - else -> category C, ``platforms = ("regional",)``.

   ``reason`` is one French sentence saying which platform answers, or what is awaited and how it is
   served meanwhile, or that the regional infrastructure serves it.
3. **Overall category** = the highest of the needs' categories (A < B < C); with no need at all, "A".
4. **Targets**, always in the order ``datagouv``, ``geoplateforme``, ``regional``, a target appearing
   only when it receives at least one need:

   - an A need goes to each of its A platforms;
   - a B need goes to each of its B platforms ("route nationally what exists today"); when that
     platform's interim policy is ``hold``, the need is also listed in that target's ``held_by`` (the
     delivery waits until the gap closes); when it is ``regional``, the need also goes to
     ``regional``; ``degrade`` adds nothing (the platform publishes without that part);
   - a C need goes to ``regional``.

   Inside a target, ``needs`` and ``held_by`` follow the needs' order in ``categories.yaml``, and so
   does ``ClassificationResult.needs``.

Everything that depends only on the rules (each need's verdict, reason, gaps and routes, and each
``NeedDecision`` for a given need and rule) is computed once per loaded :class:`Rules` and reused.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

from broker.classification.rules import CATEGORY_RANK, TARGETS, Need, PlatformEntry, Rules, view_facts
from broker.classification.schemas import (
    ClassificationResult,
    GapRef,
    NeedDecision,
    PublicationFacts,
    TargetPlan,
)

logger = logging.getLogger(__name__)

REGIONAL = "regional"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the matrix says of one need, whatever the publication."""

    category: str
    platforms: tuple[str, ...]
    gaps: tuple[GapRef, ...]
    reason: str
    routes: tuple[tuple[str, bool], ...]  # (target, held) pairs


def decide_need(need: Need, rules: Rules) -> Verdict:
    """Apply the A > B > C decision to one need's row of the matrix."""
    entries = list(need.platforms.values())
    a_entries = [e for e in entries if e.category == "A"]
    if a_entries:
        platforms = tuple(e.platform for e in a_entries)
        return Verdict(
            "A", platforms, (), _reason_a(need, a_entries, rules), tuple((p, False) for p in platforms)
        )
    b_entries = [e for e in entries if e.category == "B"]
    if b_entries:
        platforms = tuple(e.platform for e in b_entries)
        gaps = tuple(
            GapRef(need.id, e.platform, e.target_date, e.upstream, e.interim or "hold") for e in b_entries
        )
        routes = [(e.platform, e.interim == "hold") for e in b_entries]
        if any(e.interim == "regional" for e in b_entries):
            routes.append((REGIONAL, False))
        return Verdict("B", platforms, gaps, _reason_b(need, b_entries, rules), tuple(routes))
    return Verdict("C", (REGIONAL,), (), _reason_c(need, rules), ((REGIONAL, False),))


# --- French reasons -----------------------------------------------------------------------------


def _name(rules: Rules, platform: str) -> str:
    found = rules.platforms.get(platform)
    return found.sentence_name if found else platform


def _notes(entries: list[PlatformEntry]) -> str:
    notes = [e.note.rstrip(". ") for e in entries if e.note]
    if not notes:
        return ""
    text = " ; ".join(notes)
    return " — " + text[0].lower() + text[1:]


def _french_date(iso: str | None) -> str:
    if not iso:
        return "une date à fixer"
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}"


def _reason_a(need: Need, entries: list[PlatformEntry], rules: Rules) -> str:
    names = " et ".join(_name(rules, e.platform) for e in entries)
    verb = "répond" if len(entries) == 1 else "répondent"
    return f"{need.title} : {names} y {verb} déjà (catégorie A){_notes(entries)}."


def _reason_b(need: Need, entries: list[PlatformEntry], rules: Rules) -> str:
    parts = []
    for e in entries:
        name = _name(rules, e.platform)
        upstream = f" ({e.upstream})" if e.upstream else ""
        if e.interim == "regional":
            meanwhile = f"{_name(rules, REGIONAL)} le sert"
        elif e.interim == "degrade":
            meanwhile = f"{name} publie sans cette partie"
        else:
            meanwhile = f"la livraison vers {name} attend"
        parts.append(
            f"attendu sur {name} d'ici le {_french_date(e.target_date)}{upstream}, en attendant {meanwhile}"
        )
    return f"{need.title} : {' ; '.join(parts)} (catégorie B){_notes(entries)}."


def _reason_c(need: Need, rules: Rules) -> str:
    return (
        f"{need.title} : aucune plateforme nationale n'y répond, "
        f"{_name(rules, REGIONAL)} le sert (catégorie C)."
    )


# --- Per-rules cache ----------------------------------------------------------------------------


class _Compiled:
    """Verdicts of every need of one :class:`Rules`, and the NeedDecisions built so far."""

    def __init__(self, rules: Rules) -> None:
        self.verdicts = {need_id: decide_need(need, rules) for need_id, need in rules.needs.items()}
        self.decisions: dict[tuple[str, str], NeedDecision] = {}

    def decision(self, need: str, rule: str) -> NeedDecision:
        found = self.decisions.get((need, rule))
        if found is None:
            v = self.verdicts[need]
            found = NeedDecision(need, v.category, v.platforms, rule, v.reason, v.gaps)
            self.decisions[(need, rule)] = found
        return found


_COMPILED: weakref.WeakKeyDictionary[Rules, _Compiled] = weakref.WeakKeyDictionary()


def _compiled(rules: Rules) -> _Compiled:
    found = _COMPILED.get(rules)
    if found is None:
        found = _Compiled(rules)
        _COMPILED[rules] = found
    return found


# --- Public API ---------------------------------------------------------------------------------


def derive_needs(facts: PublicationFacts, rules: Rules) -> dict[str, str]:
    """Need id -> id of the first rule that derived it, in derivation order."""
    view = view_facts(facts)
    derived: dict[str, str] = {}
    for rule in rules.rules:
        if rule.matches(view):
            for need in rule.needs:
                if need not in derived:
                    derived[need] = rule.id
    return derived


def classify(facts: PublicationFacts, rules: Rules) -> ClassificationResult:
    """Classify one revision: its needs (category, platforms, rule, reason), overall category, targets."""
    compiled = _compiled(rules)
    derived = derive_needs(facts, rules)
    ids = sorted(derived, key=rules.need_index.__getitem__)
    decisions = tuple(compiled.decision(need, derived[need]) for need in ids)

    category = "A"
    for decision in decisions:
        if CATEGORY_RANK[decision.category] > CATEGORY_RANK[category]:
            category = decision.category

    needs_by_target: dict[str, list[str]] = {target: [] for target in TARGETS}
    held_by_target: dict[str, list[str]] = {target: [] for target in TARGETS}
    for need in ids:
        for target, held in compiled.verdicts[need].routes:
            needs_by_target[target].append(need)
            if held:
                held_by_target[target].append(need)
    targets = tuple(
        TargetPlan(target, tuple(needs_by_target[target]), tuple(held_by_target[target]))
        for target in TARGETS
        if needs_by_target[target]
    )
    return ClassificationResult(category, rules.digest, decisions, targets)


def explain(result: ClassificationResult) -> list[str]:
    """The decision in French lines, for ``broker plan`` and ``broker categories``."""
    lines = [
        f"Catégorie de la publication : {result.category}",
        f"Règles utilisées : empreinte {result.rules_digest[:12]}",
        "Besoins :",
    ]
    if not result.needs:
        lines.append("  (aucun besoin dérivé)")
    for n in result.needs:
        lines.append(f"  - {n.need} [{n.category}] -> {', '.join(n.platforms)} (règle {n.rule})")
        if n.reason:
            lines.append(f"      {n.reason}")
        for gap in n.gaps:
            meanwhile = _INTERIM_FR.get(gap.interim, gap.interim)
            lines.append(
                f"      manque sur {gap.platform} : date cible {_french_date(gap.target_date)}, "
                f"suivi {gap.upstream or 'aucun ticket'}, en attendant : {meanwhile}"
            )
    lines.append("Cibles :")
    if not result.targets:
        lines.append("  (aucune cible)")
    for plan in result.targets:
        held = f" ; en attente de : {', '.join(plan.held_by)}" if plan.held_by else ""
        lines.append(f"  - {plan.target} : {', '.join(plan.needs)}{held}")
    return lines


_INTERIM_FR = {
    "regional": "service régional",
    "hold": "livraison suspendue",
    "degrade": "publication nationale sans cette partie",
}
