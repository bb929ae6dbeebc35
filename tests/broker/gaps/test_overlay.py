"""The gap register laid over categories.yaml: pure, a table of realistic French cases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.classification.overlay import GapState, classify_with_overlay, overlay_rules
from broker.classification.rules import SHIPPED_RULES_PATH, Rules, load_rules
from broker.classification.schemas import PublicationFacts, ResourceFacts


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(SHIPPED_RULES_PATH)


def seeded(rules: Rules) -> list[GapState]:
    """The register as seeded from the file: one open gap per B cell, with the file's values."""
    return [
        GapState(
            need=need.id,
            platform=platform,
            status="open",
            target_date=entry.target_date,
            upstream=entry.upstream,
            interim=entry.interim or "hold",
            mirror=entry.mirror,
        )
        for need in rules.needs.values()
        for platform, entry in need.platforms.items()
        if entry.category == "B"
    ]


def with_status(gaps: list[GapState], need: str, platform: str, **changes: object) -> list[GapState]:
    return [replace(g, **changes) if (g.need, g.platform) == (need, platform) else g for g in gaps]  # type: ignore[arg-type]


# Pistes cyclables de Montpellier: a GeoJSON served as WFS, and the producer asks for on-demand extraction
# (IDGO's extractor), which the Géoplateforme does not offer yet (category B, served regionally meanwhile).
PISTES = PublicationFacts(
    access="open",
    services=("download", "wfs"),
    resources=(ResourceFacts(name="pistes.geojson", format="geojson", kind="vector"),),
    features=("extraction",),
)
# Bâtiments de Sète as OGC API Features: B on the Géoplateforme, the regional copy kept as a mirror.
BATIMENTS = PublicationFacts(
    access="open",
    services=("api",),
    resources=(ResourceFacts(name="batiments.gpkg", format="gpkg", kind="vector"),),
)
# Réseau d'eau potable of a syndicate: restricted WFS, held (interim hold) until permissions exist.
EAU = PublicationFacts(
    access="restricted",
    services=("wfs",),
    resources=(ResourceFacts(name="reseau.gpkg", format="gpkg", kind="vector"),),
)


def need_of(result: object, need: str) -> object:
    return next(n for n in result.needs if n.need == need)  # type: ignore[attr-defined]


def targets(result: object) -> dict[str, tuple[str, ...]]:
    return {t.target: t.needs for t in result.targets}  # type: ignore[attr-defined]


def test_the_seeded_register_changes_nothing(rules: Rules) -> None:
    in_force = overlay_rules(rules, seeded(rules))
    assert in_force is rules and in_force.digest == rules.digest
    assert classify_with_overlay(PISTES, in_force) == classify_with_overlay(PISTES, rules)


@pytest.mark.parametrize(
    ("facts", "need", "before_targets", "after_targets"),
    [
        # extraction: regional meanwhile, no mirror -> only the Géoplateforme once delivered
        (PISTES, "extraction", {"geoplateforme", "regional"}, {"geoplateforme"}),
        # ogc_api: regional meanwhile, kept as a mirror once delivered
        (BATIMENTS, "ogc_api", {"geoplateforme", "regional"}, {"geoplateforme", "regional"}),
    ],
)
def test_a_delivered_gap_makes_the_need_national(
    rules: Rules, facts: PublicationFacts, need: str, before_targets: set[str], after_targets: set[str]
) -> None:
    before = classify_with_overlay(facts, overlay_rules(rules, seeded(rules)))
    delivered = overlay_rules(rules, with_status(seeded(rules), need, "geoplateforme", status="delivered"))
    after = classify_with_overlay(facts, delivered)

    assert need_of(before, need).category == "B"  # type: ignore[attr-defined]
    assert need_of(after, need).category == "A"  # type: ignore[attr-defined]
    assert need_of(after, need).platforms == ("geoplateforme",)  # type: ignore[attr-defined]
    assert {t for t, needs in targets(before).items() if need in needs} == before_targets
    assert {t for t, needs in targets(after).items() if need in needs} == after_targets
    # The digest names the matrix that decided: a delivered gap is a different matrix.
    assert after.rules_digest != before.rules_digest == rules.digest
    assert "lacune fermée" in need_of(after, need).reason  # type: ignore[attr-defined]


def test_a_mirror_is_said_in_the_reason(rules: Rules) -> None:
    delivered = overlay_rules(
        rules, with_status(seeded(rules), "ogc_api", "geoplateforme", status="delivered")
    )
    reason = need_of(classify_with_overlay(BATIMENTS, delivered), "ogc_api").reason  # type: ignore[attr-defined]
    assert "miroir" in reason


def test_a_held_delivery_is_released_when_its_gap_is_delivered(rules: Rules) -> None:
    before = classify_with_overlay(EAU, overlay_rules(rules, seeded(rules)))
    plan = {t.target: t for t in before.targets}
    assert plan["geoplateforme"].held_by == ("access_restricted_services",)
    gaps = with_status(seeded(rules), "access_restricted_services", "geoplateforme", status="delivered")
    after = classify_with_overlay(EAU, overlay_rules(rules, gaps))
    assert {t.target: t for t in after.targets}["geoplateforme"].held_by == ()


def test_a_slipped_date_and_a_new_interim_reach_the_decision(rules: Rules) -> None:
    gaps = with_status(
        seeded(rules),
        "extraction",
        "geoplateforme",
        target_date="2029-01-31",
        interim="hold",
        upstream="IGNF/x#1",
    )
    result = classify_with_overlay(PISTES, overlay_rules(rules, gaps))
    decision = need_of(result, "extraction")
    assert decision.category == "B"  # type: ignore[attr-defined]
    (gap,) = decision.gaps  # type: ignore[attr-defined]
    assert (gap.target_date, gap.interim, gap.upstream) == ("2029-01-31", "hold", "IGNF/x#1")
    assert "31/01/2029" in decision.reason  # type: ignore[attr-defined]
    assert {t.target: t for t in result.targets}["geoplateforme"].held_by == ("extraction",)
    assert "regional" not in {t for t, needs in targets(result).items() if "extraction" in needs}


def test_a_dropped_gap_sends_the_need_to_the_regional_store(rules: Rules) -> None:
    gaps = with_status(seeded(rules), "extraction", "geoplateforme", status="dropped")
    result = classify_with_overlay(PISTES, overlay_rules(rules, gaps))
    assert need_of(result, "extraction").category == "C"  # type: ignore[attr-defined]
    assert targets(result)["regional"] == ("extraction",)


def test_a_gap_opened_by_staff_on_a_c_cell_makes_it_b(rules: Rules) -> None:
    # Staff agreed with DINUM that data.gouv.fr will host white-label portals: open a gap, interim regional.
    facts = replace(PISTES, portals=("cc-grand-pic-saint-loup",), features=())
    gaps = [
        *seeded(rules),
        GapState("white_label_portal", "datagouv", "open", "2028-01-01", None, "regional"),
    ]
    result = classify_with_overlay(facts, overlay_rules(rules, gaps))
    decision = need_of(result, "white_label_portal")
    assert decision.category == "B" and decision.platforms == ("datagouv",)  # type: ignore[attr-defined]
    assert "white_label_portal" in targets(result)["regional"]


def test_gaps_on_unknown_needs_are_ignored(rules: Rules) -> None:
    gaps = [*seeded(rules), GapState("besoin_disparu", "geoplateforme", "delivered")]
    assert overlay_rules(rules, gaps).digest == rules.digest


def test_the_overlay_is_compiled_once_per_register(rules: Rules) -> None:
    gaps = with_status(seeded(rules), "extraction", "geoplateforme", status="delivered")
    assert overlay_rules(rules, gaps) is overlay_rules(rules, list(reversed(gaps)))
