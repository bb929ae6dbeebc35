"""Loading and validating categories.yaml: the committed file, broken variants, digest, path resolution."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.classification import rules as rules_module
from broker.classification.rules import (
    SHIPPED_RULES_PATH,
    RulesError,
    check_file,
    compile_condition,
    default_rules_path,
    load_rules,
    normalize_word,
    view_facts,
)
from broker.classification.schemas import PublicationFacts, ResourceFacts

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "categories.yaml"
RESEARCH_FILES = ("research/datagouv-api.md", "research/geoplateforme-api.md", "research/peers.md")


def committed_data() -> dict[str, Any]:
    return copy.deepcopy(rules_module._read(COMMITTED))


def write(tmp_path: Path, data: Any, name: str = "categories.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# --- The committed file -------------------------------------------------------------------------


def test_committed_file_is_valid() -> None:
    assert check_file(COMMITTED) == []
    rules = load_rules(COMMITTED)
    assert rules.version >= 1
    assert set(rules.platforms) == {"datagouv", "geoplateforme", "regional"}
    assert len(rules.needs) >= 30
    assert len(rules.rules) >= 30


def test_shipped_copy_is_a_relative_symlink_to_the_committed_file() -> None:
    assert SHIPPED_RULES_PATH.is_symlink()
    assert os.readlink(SHIPPED_RULES_PATH) == "../../categories.yaml"
    assert SHIPPED_RULES_PATH.resolve() == COMMITTED.resolve()


def test_every_rule_need_exists_and_every_need_is_derivable() -> None:
    rules = load_rules(COMMITTED)
    derived = {need for rule in rules.rules for need in rule.needs}
    assert derived <= set(rules.needs)
    assert set(rules.needs) == derived, "a need no rule derives is dead weight"
    assert len({rule.id for rule in rules.rules}) == len(rules.rules)


def test_seed_features_are_all_catalogued() -> None:
    """It should hold one need per target feature of OPenIG's seed presentation."""
    needs = set(load_rules(COMMITTED).needs)
    expected = {
        "deposit_manual", "deposit_automated",
        "format_vector", "format_text", "format_raster", "format_cog", "format_document",
        "access_open", "access_restricted", "sso_oidc",
        "white_label_portal", "white_label_widget",
        "search_semantic", "search_map",
        "visualisation_metadata", "visualisation_data", "visualisation_resources",
        "download", "wms", "wmts", "wfs", "data_api", "ogc_api", "extraction",
        "harvested_by_datagouv", "harvested_by_geoplateforme", "harvest_dcat", "harvest_csw",
        "national_channel_gtfs", "national_channel_urban_planning",
    }  # fmt: skip
    assert expected <= needs


# Facts from research/ that the matrix must keep (need, platform, allowed categories).
FAITHFUL = [
    ("wfs", "geoplateforme", {"A"}),
    ("wms", "geoplateforme", {"A"}),
    ("wmts", "geoplateforme", {"A"}),
    ("wfs", "datagouv", {"C"}),
    ("wms", "datagouv", {"C"}),
    ("wmts", "datagouv", {"C"}),
    ("download", "datagouv", {"A"}),
    ("format_raster", "geoplateforme", {"A"}),
    ("format_cog", "geoplateforme", {"B", "C"}),
    ("access_restricted", "datagouv", {"C"}),
    ("access_restricted_services", "datagouv", {"C"}),
    ("white_label_portal", "datagouv", {"C"}),
    ("white_label_portal", "geoplateforme", {"C"}),
    ("white_label_widget", "datagouv", {"C"}),
    ("white_label_widget", "geoplateforme", {"C"}),
    ("search_semantic", "datagouv", {"B", "C"}),
    ("search_semantic", "geoplateforme", {"B", "C"}),
    ("national_channel_gtfs", "datagouv", {"A"}),
    ("harvest_dcat", "datagouv", {"A"}),
    ("harvest_dcat", "geoplateforme", {"C"}),
    ("harvest_csw", "datagouv", {"A"}),
    ("harvested_by_geoplateforme", "geoplateforme", {"A"}),
    ("ogc_api", "datagouv", {"C"}),
]


@pytest.mark.parametrize(("need", "platform", "allowed"), FAITHFUL, ids=[f"{n}-{p}" for n, p, _ in FAITHFUL])
def test_matrix_is_faithful_to_the_research(need: str, platform: str, allowed: set[str]) -> None:
    entry = load_rules(COMMITTED).needs[need].platforms[platform]
    assert entry.category in allowed


def test_every_entry_cites_the_research_and_every_b_is_an_agreement_placeholder() -> None:
    rules = load_rules(COMMITTED)
    b_entries = 0
    for need in rules.needs.values():
        for entry in need.platforms.values():
            assert entry.source.startswith(RESEARCH_FILES), (need.id, entry.source)
            assert "§" in entry.source, (need.id, entry.source)
            if entry.category == "B":
                b_entries += 1
                assert entry.target_date_set_by == "openig-agreement"
                assert entry.target_date is not None and entry.interim in {"regional", "hold", "degrade"}
        if all(e.category == "C" for e in need.platforms.values()):
            assert need.regional, f"{need.id}: a need nobody answers nationally must be served regionally"
    assert b_entries >= 3
    interims = {e.interim for n in rules.needs.values() for e in n.platforms.values() if e.category == "B"}
    assert interims == {"regional", "hold", "degrade"}, "each interim policy should be exercised"


def test_yaml_comment_does_not_swallow_a_value() -> None:
    """A plain YAML scalar ends at " #": it should not have cut a note or a source short."""
    rules = load_rules(COMMITTED)
    note = rules.needs["access_restricted_services"].platforms["geoplateforme"].note
    assert note is not None and note.endswith("#938).")
    assert rules.needs["national_channel_gtfs"].platforms["datagouv"].source.endswith("#3216)")


# --- Invalid variants ---------------------------------------------------------------------------


def _drop_target_date(d: dict[str, Any]) -> None:
    del d["needs"]["format_cog"]["platforms"]["geoplateforme"]["target_date"]


def _unknown_need_in_rule(d: dict[str, Any]) -> None:
    d["rules"][0]["needs"].append("teleportation")


def _bad_category(d: dict[str, Any]) -> None:
    d["needs"]["wfs"]["platforms"]["geoplateforme"]["category"] = "D"


def _bad_interim(d: dict[str, Any]) -> None:
    d["needs"]["ogc_api"]["platforms"]["geoplateforme"]["interim"] = "later"


def _date_on_category_a(d: dict[str, Any]) -> None:
    d["needs"]["wfs"]["platforms"]["geoplateforme"]["target_date"] = "2027-01-01"


def _impossible_date(d: dict[str, Any]) -> None:
    d["needs"]["ogc_api"]["platforms"]["geoplateforme"]["target_date"] = "2027-02-30"


def _duplicate_rule_id(d: dict[str, Any]) -> None:
    d["rules"][2]["id"] = d["rules"][1]["id"]


def _two_keys_in_condition(d: dict[str, Any]) -> None:
    d["rules"][1]["when"] = {"access": "open", "channel_in": ["api"]}


def _unknown_condition(d: dict[str, Any]) -> None:
    d["rules"][1]["when"] = {"moon_phase": "full"}


def _unknown_key_on_need(d: dict[str, Any]) -> None:
    d["needs"]["wms"]["priority"] = 1


def _c_everywhere_but_not_regional(d: dict[str, Any]) -> None:
    d["needs"]["search_map"]["regional"] = False


def _regional_interim_without_regional_store(d: dict[str, Any]) -> None:
    d["needs"]["extraction"]["regional"] = False


def _mirror_without_regional_interim(d: dict[str, Any]) -> None:
    d["needs"]["format_cog"]["platforms"]["geoplateforme"]["mirror"] = True


def _unknown_platform(d: dict[str, Any]) -> None:
    d["needs"]["wms"]["platforms"]["gpu"] = {"category": "A", "source": "research/peers.md §7"}


def _source_outside_research(d: dict[str, Any]) -> None:
    d["needs"]["wms"]["platforms"]["datagouv"]["source"] = "trust me"


def _missing_interim_for_b(d: dict[str, Any]) -> None:
    del d["needs"]["extraction"]["platforms"]["geoplateforme"]["interim"]


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "b-without-target-date",
        _drop_target_date,
        "needs.format_cog.platforms.geoplateforme.target_date: required for category B",
    ),
    (
        "b-without-interim",
        _missing_interim_for_b,
        "needs.extraction.platforms.geoplateforme.interim: required for category B",
    ),
    ("unknown-need-in-rule", _unknown_need_in_rule, "rules.0.needs.2: unknown need 'teleportation'"),
    ("bad-category", _bad_category, "needs.wfs.platforms.geoplateforme.category: 'D' is not one of"),
    ("bad-interim", _bad_interim, "needs.ogc_api.platforms.geoplateforme.interim: 'later' is not one of"),
    (
        "target-date-on-a",
        _date_on_category_a,
        "needs.wfs.platforms.geoplateforme.target_date: only allowed for category B",
    ),
    (
        "impossible-date",
        _impossible_date,
        "needs.ogc_api.platforms.geoplateforme.target_date: '2027-02-30' is not a valid date",
    ),
    (
        "duplicate-rule-id",
        _duplicate_rule_id,
        "rules.2.id: duplicate rule id 'access.open' (first at rules.1)",
    ),
    ("two-keys-in-condition", _two_keys_in_condition, "rules.1.when: a condition has exactly one key"),
    ("unknown-condition", _unknown_condition, "rules.1.when: unknown key(s): moon_phase"),
    ("unknown-key-on-need", _unknown_key_on_need, "needs.wms: unknown key(s): priority"),
    ("unknown-platform", _unknown_platform, "needs.wms.platforms: unknown key(s): gpu"),
    ("source-outside-research", _source_outside_research, "needs.wms.platforms.datagouv.source: 'trust me'"),
    ("c-but-not-regional", _c_everywhere_but_not_regional, "needs.search_map.regional: must be true"),
    (
        "regional-interim-without-store",
        _regional_interim_without_regional_store,
        "needs.extraction.platforms.geoplateforme.interim: 'regional' needs the regional store",
    ),
    (
        "mirror-without-regional",
        _mirror_without_regional_interim,
        "needs.format_cog.platforms.geoplateforme.mirror: only meaningful with interim: regional",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_file_is_reported_with_its_path(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = committed_data()
    mutate(data)
    path = write(tmp_path, data)
    problems = check_file(path)
    assert any(p.startswith(expected) for p in problems), problems
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert caught.value.errors == problems
    assert caught.value.source == path
    assert expected in str(caught.value)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    data = committed_data()
    _drop_target_date(data)
    _unknown_need_in_rule(data)
    _bad_category(data)
    problems = check_file(write(tmp_path, data))
    assert len(problems) == 3, problems
    assert problems == sorted(problems[:2]) + problems[2:], (
        "schema problems come sorted, then cross-references"
    )


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    text = COMMITTED.read_text(encoding="utf-8")
    duplicated = text.replace("needs:\n", "needs:\n  wfs:\n    title: doublon\n", 1)
    path = tmp_path / "categories.yaml"
    path.write_text(duplicated, encoding="utf-8")
    problems = check_file(path)
    assert len(problems) == 1 and "duplicate key 'wfs'" in problems[0]


def test_unparsable_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("needs: [unclosed\n", encoding="utf-8")
    assert check_file(broken)[0].startswith("(yaml):")
    missing = tmp_path / "nowhere.yaml"
    assert check_file(missing) == [f"{missing}: file not found"]
    with pytest.raises(RulesError):
        load_rules(missing)


def test_unquoted_dates_stay_iso_strings(tmp_path: Path) -> None:
    text = COMMITTED.read_text(encoding="utf-8").replace(
        'target_date: "2027-06-30"', "target_date: 2027-06-30"
    )
    assert "target_date: 2027-06-30" in text
    path = tmp_path / "categories.yaml"
    path.write_text(text, encoding="utf-8")
    entry = load_rules(path).needs["format_cog"].platforms["geoplateforme"]
    assert entry.target_date == "2027-06-30"


# --- Digest -------------------------------------------------------------------------------------


def test_digest_is_the_sha256_of_the_canonical_json_and_is_stable() -> None:
    first, second = load_rules(COMMITTED), load_rules(COMMITTED)
    assert first.digest == second.digest
    canonical = json.dumps(
        rules_module._read(COMMITTED), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert first.digest == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert len(first.digest) == 64


def test_digest_changes_with_the_data_not_with_comments(tmp_path: Path) -> None:
    original = load_rules(COMMITTED).digest
    text = COMMITTED.read_text(encoding="utf-8")
    commented = tmp_path / "commented.yaml"
    commented.write_text("# une remarque de plus\n" + text, encoding="utf-8")
    assert load_rules(commented).digest == original

    changed = tmp_path / "changed.yaml"
    changed.write_text(text.replace('"2027-06-30"', '"2027-09-30"'), encoding="utf-8")
    assert load_rules(changed).digest != original


# --- Paths and views ----------------------------------------------------------------------------


def test_default_path_prefers_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_rules_path() == SHIPPED_RULES_PATH
    assert load_rules().source == SHIPPED_RULES_PATH

    local = write(tmp_path, committed_data())
    assert default_rules_path() == local
    assert load_rules().source == local


def test_public_view_is_plain_json_in_file_order() -> None:
    rules = load_rules(COMMITTED)
    view = rules.public_view()
    json.dumps(view)
    assert list(view["needs"]) == list(rules.needs) == view["need_order"]
    assert view["needs"]["wfs"]["platforms"]["geoplateforme"]["category"] == "A"
    assert [r["id"] for r in view["rules"]] == [r.id for r in rules.rules]
    view["needs"].clear()
    assert rules.public_view()["needs"], "the view should be a copy"


def test_typed_objects() -> None:
    rules = load_rules(COMMITTED)
    wfs = rules.needs["wfs"]
    assert (wfs.title, wfs.group, wfs.regional) == ("Service WFS", "retrieval", False)
    assert list(wfs.platforms) == ["datagouv", "geoplateforme"]
    gap = rules.needs["access_restricted_services"].platforms["geoplateforme"]
    assert (gap.category, gap.interim, gap.upstream) == ("B", "hold", "IGNF/cartes.gouv.fr#790")
    assert rules.platforms["geoplateforme"].sentence_name == "la Géoplateforme"
    assert rules.groups["white_label"] == "Marque blanche"
    with pytest.raises(TypeError):
        rules.needs["new"] = wfs  # type: ignore[index]


# --- Conditions ---------------------------------------------------------------------------------

GPKG = ResourceFacts("plu.gpkg", "gpkg", "vector")
CSV_URL = ResourceFacts("compteurs.csv", "csv", "table", remote=True, sync="weekly")

CONDITIONS: list[tuple[str, dict[str, Any], PublicationFacts, bool]] = [
    ("always", {"always": True}, PublicationFacts(), True),
    ("access", {"access": "restricted"}, PublicationFacts(access="restricted"), True),
    ("access-no", {"access": "restricted"}, PublicationFacts(), False),
    ("channel", {"channel_in": ["sftp", "harvest"]}, PublicationFacts(channel="sftp"), True),
    ("service", {"service_in": ["wfs"]}, PublicationFacts(services=("wms", "wfs")), True),
    ("portals-empty", {"portals": "empty"}, PublicationFacts(), True),
    ("portals-nonempty", {"portals": "nonempty"}, PublicationFacts(portals=("cc-lodevois",)), True),
    ("resources-empty", {"resources": "nonempty"}, PublicationFacts(), False),
    ("format", {"resource_format_in": ["gpkg"]}, PublicationFacts(resources=(GPKG,)), True),
    (
        "format-case",
        {"resource_format_in": ["gpkg"]},
        PublicationFacts(resources=(ResourceFacts("A", "GPKG"),)),
        True,
    ),
    ("kind", {"resource_kind_in": ["raster"]}, PublicationFacts(resources=(GPKG,)), False),
    ("sync", {"resource_sync_in": ["weekly"]}, PublicationFacts(resources=(GPKG, CSV_URL)), True),
    ("remote", {"resource_remote": True}, PublicationFacts(resources=(CSV_URL,)), True),
    ("theme", {"theme_in": ["urban_planning"]}, PublicationFacts(themes=("Urban-Planning",)), True),
    (
        "keyword-accents",
        {"keyword_in": ["carte communale"]},
        PublicationFacts(keywords=("Carte_Communale",)),
        True,
    ),
    ("keyword-accents-2", {"keyword_in": ["réseau"]}, PublicationFacts(keywords=("RESEAU",)), True),
    ("feature", {"feature_in": ["extraction"]}, PublicationFacts(features=("Extraction",)), True),
    ("harvested", {"harvested_from_in": ["csw"]}, PublicationFacts(harvested_from="dcat"), False),
    (
        "all",
        {"all": [{"access": "open"}, {"service_in": ["wms"]}]},
        PublicationFacts(services=("wms",)),
        True,
    ),
    ("all-no", {"all": [{"access": "open"}, {"service_in": ["wms"]}]}, PublicationFacts(), False),
    ("any", {"any": [{"access": "restricted"}, {"channel_in": ["api"]}]}, PublicationFacts(), True),
    ("not", {"not": {"access": "open"}}, PublicationFacts(access="restricted"), True),
]


@pytest.mark.parametrize(
    ("condition", "facts", "expected"), [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS]
)
def test_compiled_condition(condition: dict[str, Any], facts: PublicationFacts, expected: bool) -> None:
    assert compile_condition(condition)(view_facts(facts)) is expected


def test_normalize_word() -> None:
    assert normalize_word("Document d'Urbanisme") == "document d urbanisme"
    assert normalize_word("  PLUi ") == "plui"
    assert normalize_word("Réseau-d’eau_potable") == "reseau d eau potable"
