"""Classification of realistic Occitanie publications against the committed categories.yaml."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.classification.engine import classify, decide_need, derive_needs, explain
from broker.classification.rules import Rules, load_rules, rules_from_data
from broker.classification.schemas import ClassificationResult, PublicationFacts, ResourceFacts

COMMITTED = Path(__file__).resolve().parents[3] / "categories.yaml"

DG, GP, RG = "datagouv", "geoplateforme", "regional"


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(COMMITTED)


def res(name: str, fmt: str, kind: str, *, remote: bool = False, sync: str | None = None) -> ResourceFacts:
    return ResourceFacts(name=name, format=fmt, kind=kind, remote=remote, sync=sync)


@dataclass(frozen=True)
class Case:
    id: str
    facts: PublicationFacts
    category: str
    # need -> (category, platforms, rule), for the needs this case is about
    needs: dict[str, tuple[str, tuple[str, ...], str]]
    # target -> held_by; the exact set of targets
    targets: dict[str, tuple[str, ...]]
    absent: tuple[str, ...] = field(default=())


CASES = [
    Case(
        "plu-montpellier-gpkg-wms-wfs",
        PublicationFacts(
            services=("download", "wms", "wfs"),
            resources=(res("plu_montpellier.gpkg", "gpkg", "vector"),),
            keywords=("PLU", "urbanisme", "zonage"),
            themes=("urban_planning",),
        ),
        "A",
        {
            "wms": ("A", (GP,), "service.wms"),
            "wfs": ("A", (GP,), "service.wfs"),
            "format_vector": ("A", (DG, GP), "format.vector"),
            "download": ("A", (DG,), "files.download"),
            "national_channel_urban_planning": ("A", (DG,), "theme.urban_planning"),
            "harvested_by_geoplateforme": ("A", (GP,), "geodata.catalogue"),
            "deposit_manual": ("A", (DG,), "channel.manual"),
        },
        {DG: (), GP: ()},
        absent=("access_restricted", "deposit_automated"),
    ),
    Case(
        "cadastre-parcelles-geojson",
        PublicationFacts(
            resources=(res("parcelles_34.geojson", "geojson", "vector"),),
            keywords=("cadastre", "parcelles"),
            channel="dashboard",
        ),
        "A",
        {
            "format_vector": ("A", (DG, GP), "format.vector"),
            "visualisation_data": ("A", (GP,), "geodata.visualisation"),
            "visualisation_metadata": ("A", (DG,), "baseline.catalogue"),
            "harvested_by_datagouv": ("A", (DG,), "baseline.catalogue"),
            "access_open": ("A", (DG,), "access.open"),
        },
        {DG: (), GP: ()},
        absent=("wfs", "wms"),
    ),
    Case(
        "gtfs-reseau-tam",
        PublicationFacts(
            resources=(res("gtfs_tam.zip", "gtfs", "gtfs", remote=True, sync="daily"),),
            keywords=("transport", "GTFS", "tramway"),
            themes=("transport",),
        ),
        "A",
        {
            "national_channel_gtfs": ("A", (DG,), "theme.transport_gtfs"),
            "format_text": ("A", (DG,), "format.text"),
            "deposit_automated": ("A", (DG,), "sync.scheduled"),
            "download": ("A", (DG,), "files.download"),
        },
        {DG: ()},
        absent=("harvested_by_geoplateforme", "format_document"),
    ),
    Case(
        "orthophoto-2024-geotiff-wmts",
        PublicationFacts(
            services=("wmts",),
            resources=(res("ortho_2024_20cm.tif", "tif", "raster"),),
            keywords=("orthophotographie", "2024"),
            channel="cli",
        ),
        "A",
        {
            "format_raster": ("A", (DG, GP), "format.raster"),
            "wmts": ("A", (GP,), "service.wmts"),
            "visualisation_data": ("A", (GP,), "geodata.visualisation"),
        },
        {DG: (), GP: ()},
        absent=("format_cog",),
    ),
    Case(
        "mnt-cog",
        PublicationFacts(services=("wmts",), resources=(res("mnt_1m_herault.tif", "cog", "raster"),)),
        "B",
        {
            "format_cog": ("B", (GP,), "format.cog"),
            "format_raster": ("A", (DG, GP), "format.raster"),
        },
        {DG: (), GP: ()},
    ),
    Case(
        "ortho-jpeg2000-wms",
        PublicationFacts(services=("wms",), resources=(res("ortho_1950_lozere.jp2", "jp2", "raster"),)),
        "A",
        {"format_raster": ("A", (DG, GP), "format.raster"), "wms": ("A", (GP,), "service.wms")},
        {DG: (), GP: ()},
    ),
    Case(
        "reseau-eau-potable-restreint",
        PublicationFacts(
            access="restricted",
            services=("wfs", "wms"),
            resources=(res("reseau_aep_sete.gpkg", "gpkg", "vector"),),
            keywords=("eau potable", "réseau", "canalisations"),
        ),
        "C",
        {
            "access_restricted": ("C", (RG,), "access.restricted"),
            "sso_oidc": ("C", (RG,), "access.restricted"),
            "access_restricted_services": ("B", (GP,), "access.restricted_services"),
            "wfs": ("A", (GP,), "service.wfs"),
            "harvested_by_datagouv": ("A", (DG,), "baseline.catalogue"),
        },
        {DG: (), GP: ("access_restricted_services",), RG: ()},
        absent=("format_vector", "download", "access_open", "visualisation_data"),
    ),
    Case(
        "ppri-pdf",
        PublicationFacts(
            resources=(res("ppri_lez.pdf", "pdf", "document"),),
            keywords=("PPRI", "risque inondation", "Lez"),
        ),
        "A",
        {
            "format_document": ("A", (DG,), "format.document"),
            "visualisation_resources": ("A", (DG,), "resources.visualisation"),
            "download": ("A", (DG,), "files.download"),
        },
        {DG: ()},
        absent=("national_channel_urban_planning", "harvested_by_geoplateforme"),
    ),
    Case(
        "compteurs-velo-csv-hebdo-api",
        PublicationFacts(
            services=("api",),
            resources=(res("compteurs_velo.csv", "csv", "table", remote=True, sync="weekly"),),
            keywords=("vélo", "mobilité", "comptage"),
        ),
        "A",
        {
            "format_text": ("A", (DG,), "format.text"),
            "deposit_automated": ("A", (DG,), "sync.scheduled"),
            "data_api": ("A", (DG,), "service.api_table"),
            "visualisation_resources": ("A", (DG,), "resources.visualisation"),
        },
        {DG: ()},
        absent=("ogc_api",),
    ),
    Case(
        "arretes-voirie-depot-sftp",
        PublicationFacts(channel="sftp", resources=(res("arretes_voirie_2025.csv", "csv", "table"),)),
        "A",
        {"deposit_automated": ("A", (DG,), "channel.automated")},
        {DG: ()},
        absent=("deposit_manual",),
    ),
    Case(
        "catalogue-dcat-moissonne",
        PublicationFacts(
            channel="harvest",
            harvested_from="dcat",
            resources=(res("equipements_sportifs.csv", "csv", "table", remote=True, sync="monthly"),),
        ),
        "A",
        {
            "harvest_dcat": ("A", (DG,), "harvest.dcat"),
            "deposit_automated": ("A", (DG,), "channel.automated"),
        },
        {DG: ()},
        absent=("harvest_csw",),
    ),
    Case(
        "catalogue-csw-ddt-moissonne",
        PublicationFacts(
            channel="harvest",
            harvested_from="csw",
            resources=(res("zones_inondables.geojson", "geojson", "vector", remote=True),),
        ),
        "A",
        {
            "harvest_csw": ("A", (DG,), "harvest.csw"),
            "format_vector": ("A", (DG, GP), "format.vector"),
        },
        {DG: (), GP: ()},
    ),
    Case(
        "sous-portail-cc-grand-pic-saint-loup",
        PublicationFacts(
            portals=("cc-grand-pic-saint-loup",),
            resources=(res("equipements.csv", "csv", "table"),),
        ),
        "C",
        {"white_label_portal": ("C", (RG,), "portal.sub_portal")},
        {DG: (), RG: ()},
    ),
    Case(
        "widget-office-tourisme",
        PublicationFacts(features=("widget",), resources=(res("hebergements.csv", "csv", "table"),)),
        "C",
        {"white_label_widget": ("C", (RG,), "feature.widget")},
        {DG: (), RG: ()},
        absent=("white_label_portal",),
    ),
    Case(
        "api-ogc-batiments",
        PublicationFacts(services=("api", "wfs"), resources=(res("batiments.gpkg", "gpkg", "vector"),)),
        "B",
        {"ogc_api": ("B", (GP,), "service.api_ogc"), "wfs": ("A", (GP,), "service.wfs")},
        {DG: (), GP: (), RG: ()},
        absent=("data_api",),
    ),
    Case(
        "api-ogc-demandee-explicitement",
        PublicationFacts(features=("ogc_api",), resources=(res("arbres.geojson", "geojson", "vector"),)),
        "B",
        {"ogc_api": ("B", (GP,), "feature.ogc_api")},
        {DG: (), GP: (), RG: ()},
    ),
    Case(
        "extraction-occupation-sol",
        PublicationFacts(
            services=("wfs",),
            features=("extraction",),
            resources=(res("ocsge_occitanie.gpkg", "gpkg", "vector"),),
        ),
        "B",
        {"extraction": ("B", (GP,), "feature.extraction")},
        {DG: (), GP: (), RG: ()},
    ),
    Case(
        "recherche-semantique-et-carto",
        PublicationFacts(
            features=("search",), resources=(res("zones_activite.geojson", "geojson", "vector"),)
        ),
        "C",
        {
            "search_semantic": ("C", (RG,), "feature.search_semantic"),
            "search_map": ("C", (RG,), "feature.search_map"),
        },
        {DG: (), GP: (), RG: ()},
    ),
    Case(
        "sso-demande-sur-donnee-ouverte",
        PublicationFacts(features=("SSO",), resources=(res("budget.csv", "csv", "table"),)),
        "C",
        {"sso_oidc": ("C", (RG,), "feature.sso")},
        {DG: (), RG: ()},
        absent=("access_restricted",),
    ),
    Case(
        "plan-recolement-pdf-restreint",
        PublicationFacts(access="restricted", resources=(res("recolement_reseaux.pdf", "pdf", "document"),)),
        "C",
        {"access_restricted": ("C", (RG,), "access.restricted")},
        {DG: (), RG: ()},
        absent=("format_document", "download", "visualisation_resources", "access_restricted_services"),
    ),
    Case(
        "csv-restreint-avec-api",
        PublicationFacts(
            access="restricted",
            services=("api",),
            resources=(res("aides_sociales.csv", "csv", "table"),),
        ),
        "C",
        {"access_restricted": ("C", (RG,), "access.restricted")},
        {DG: (), RG: ()},
        absent=("data_api", "format_text"),
    ),
    Case(
        "vecteur-restreint-avec-api",
        PublicationFacts(
            access="restricted",
            services=("api",),
            resources=(res("assainissement.gpkg", "gpkg", "vector"),),
        ),
        "C",
        {
            "ogc_api": ("B", (GP,), "service.api_ogc"),
            "access_restricted": ("C", (RG,), "access.restricted"),
        },
        {DG: (), GP: (), RG: ()},
        absent=("access_restricted_services",),
    ),
    Case(
        "plui-par-mot-cle",
        PublicationFacts(
            resources=(res("plui_zonage.shp", "shp", "vector"),),
            keywords=("PLUi", "Communauté de communes du Clermontais"),
        ),
        "A",
        {"national_channel_urban_planning": ("A", (DG,), "theme.urban_planning")},
        {DG: (), GP: ()},
    ),
    Case(
        "carte-communale-mot-cle-accentue",
        PublicationFacts(
            resources=(res("carte_communale.pdf", "pdf", "document"),),
            keywords=("Carte-Communale", "Saint-Guilhem-le-Désert"),
        ),
        "A",
        {"national_channel_urban_planning": ("A", (DG,), "theme.urban_planning")},
        {DG: ()},
    ),
    Case(
        "fiche-sans-ressource",
        PublicationFacts(keywords=("inventaire",)),
        "A",
        {
            "visualisation_metadata": ("A", (DG,), "baseline.catalogue"),
            "deposit_manual": ("A", (DG,), "channel.manual"),
        },
        {DG: ()},
        absent=("download", "format_text"),
    ),
    Case(
        "ortho-hr-restreinte-sous-portail",
        PublicationFacts(
            access="restricted",
            services=("wmts",),
            portals=("communes-du-gard",),
            resources=(res("ortho_5cm_nimes.tif", "tif", "raster"),),
        ),
        "C",
        {
            "access_restricted_services": ("B", (GP,), "access.restricted_services"),
            "wmts": ("A", (GP,), "service.wmts"),
            "white_label_portal": ("C", (RG,), "portal.sub_portal"),
        },
        {DG: (), GP: ("access_restricted_services",), RG: ()},
        absent=("format_raster",),
    ),
    Case(
        "archive-photos-aeriennes-zip",
        PublicationFacts(resources=(res("photos_aeriennes_1950.zip", "zip", "archive"),)),
        "A",
        {"format_document": ("A", (DG,), "format.document")},
        {DG: ()},
        absent=("visualisation_resources",),
    ),
    Case(
        "carte-bruit-png",
        PublicationFacts(resources=(res("carte_bruit_routier.png", "png", "image"),)),
        "A",
        {
            "format_document": ("A", (DG,), "format.document"),
            "visualisation_resources": ("A", (DG,), "resources.visualisation"),
        },
        {DG: ()},
    ),
    Case(
        "pistes-cyclables-gpkg-et-notice-pdf",
        PublicationFacts(
            services=("wms",),
            resources=(
                res("pistes_cyclables.gpkg", "gpkg", "vector"),
                res("notice.pdf", "pdf", "document"),
            ),
        ),
        "A",
        {
            "format_vector": ("A", (DG, GP), "format.vector"),
            "format_document": ("A", (DG,), "format.document"),
        },
        {DG: (), GP: ()},
    ),
    Case(
        "horaires-piscines-json",
        PublicationFacts(resources=(res("horaires_piscines.json", "json", "table"),)),
        "A",
        {"format_text": ("A", (DG,), "format.text")},
        {DG: ()},
    ),
    Case(
        "bornes-irve-csv-geographique",
        PublicationFacts(resources=(res("bornes_irve.csv", "csv", "vector"),)),
        "A",
        {
            "format_vector": ("A", (DG, GP), "format.vector"),
            "format_text": ("A", (DG,), "format.text"),
        },
        {DG: (), GP: ()},
    ),
    Case(
        "shp-depose-par-tableau-de-bord",
        PublicationFacts(
            channel="dashboard",
            services=("download",),
            resources=(res("sentiers_randonnee.shp", "shp", "vector"),),
        ),
        "A",
        {"deposit_manual": ("A", (DG,), "channel.manual"), "download": ("A", (DG,), "files.download")},
        {DG: (), GP: ()},
    ),
    Case(
        "url-jamais-resynchronisee",
        PublicationFacts(resources=(res("budget_2023.csv", "csv", "table", remote=True, sync="never"),)),
        "A",
        {"deposit_manual": ("A", (DG,), "channel.manual")},
        {DG: ()},
        absent=("deposit_automated",),
    ),
    Case(
        "tout-a-la-fois-restreint",
        PublicationFacts(
            access="restricted",
            channel="harvest",
            harvested_from="csw",
            services=("wfs", "api"),
            portals=("sdis-34",),
            features=("extraction", "search_map"),
            resources=(res("hydrants.gpkg", "gpkg", "vector"),),
        ),
        "C",
        {
            "harvest_csw": ("A", (DG,), "harvest.csw"),
            "extraction": ("B", (GP,), "feature.extraction"),
            "ogc_api": ("B", (GP,), "service.api_ogc"),
            "search_map": ("C", (RG,), "feature.search_map"),
            "white_label_portal": ("C", (RG,), "portal.sub_portal"),
        },
        {DG: (), GP: ("access_restricted_services",), RG: ()},
    ),
    Case(
        "gtfs-mot-cle-sans-format",
        PublicationFacts(keywords=("gtfs",), resources=(res("lignes_bus.zip", "zip", "archive"),)),
        "A",
        {"national_channel_gtfs": ("A", (DG,), "theme.transport_gtfs")},
        {DG: ()},
    ),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, rules: Rules) -> None:
    result = classify(case.facts, rules)
    decisions = {d.need: d for d in result.needs}
    assert result.category == case.category
    for need, (category, platforms, rule) in case.needs.items():
        assert need in decisions, f"{need} not derived; got {sorted(decisions)}"
        got = decisions[need]
        assert (got.category, got.platforms, got.rule) == (category, platforms, rule), need
    for need in case.absent:
        assert need not in decisions, need
    assert {t.target: t.held_by for t in result.targets} == case.targets


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_routing_invariants(case: Case, rules: Rules) -> None:
    """Every decision follows the documented routing, whatever the case."""
    result = classify(case.facts, rules)
    plans = {t.target: t for t in result.targets}
    rank = {"A": 0, "B": 1, "C": 2}
    assert result.category == max((d.category for d in result.needs), key=rank.__getitem__, default="A")
    assert result.rules_digest == rules.digest
    for d in result.needs:
        entries = rules.needs[d.need].platforms
        assert d.reason.endswith(f"(catégorie {d.category}).") or f"(catégorie {d.category}) — " in d.reason
        if d.category == "A":
            assert set(d.platforms) == {p for p, e in entries.items() if e.category == "A"}
            assert all(d.need in plans[p].needs for p in d.platforms)
            assert not d.gaps
        elif d.category == "B":
            assert not any(e.category == "A" for e in entries.values())
            assert [g.platform for g in d.gaps] == list(d.platforms)
            for gap in d.gaps:
                entry = entries[gap.platform]
                assert (gap.target_date, gap.upstream, gap.interim) == (
                    entry.target_date,
                    entry.upstream,
                    entry.interim,
                )
                assert d.need in plans[gap.platform].needs
                assert (d.need in plans[gap.platform].held_by) is (gap.interim == "hold")
                if gap.interim == "regional":
                    assert d.need in plans["regional"].needs
        else:
            assert d.platforms == ("regional",)
            assert d.need in plans["regional"].needs
    order = [rules.need_index[d.need] for d in result.needs]
    assert order == sorted(order)
    for plan in result.targets:
        assert plan.needs, "a target is listed only when it receives a need"
        assert set(plan.held_by) <= set(plan.needs)
    assert [t.target for t in result.targets] == [
        t for t in ("datagouv", "geoplateforme", "regional") if t in plans
    ]


def test_restricted_files_never_go_to_datagouv(rules: Rules) -> None:
    """It should send data.gouv.fr only the record of a restricted dataset, never a file need."""
    file_needs = {"download", "format_vector", "format_text", "format_raster", "format_document", "data_api"}
    for case in CASES:
        if case.facts.access != "restricted":
            continue
        result = classify(case.facts, rules)
        datagouv = next(t for t in result.targets if t.target == "datagouv")
        assert not file_needs & set(datagouv.needs), case.id


def test_deterministic_and_serialisable(rules: Rules) -> None:
    facts = CASES[6].facts
    first, second = classify(facts, rules), classify(facts, rules)
    assert first == second
    assert first.to_dict() == second.to_dict()
    body = json.loads(json.dumps(first.to_dict(), ensure_ascii=False))
    assert body["category"] == "C"
    assert body["needs"][0].keys() >= {"need", "category", "platforms", "rule", "reason", "gaps"}


def test_first_rule_wins_and_derivation_order(rules: Rules) -> None:
    facts = PublicationFacts(
        channel="sftp", resources=(res("a.csv", "csv", "table", remote=True, sync="daily"),)
    )
    derived = derive_needs(facts, rules)
    assert derived["deposit_automated"] == "channel.automated"  # before sync.scheduled in the file
    assert list(derived)[:2] == ["visualisation_metadata", "harvested_by_datagouv"]


def test_reasons_in_french(rules: Rules) -> None:
    result = classify(CASES[6].facts, rules)
    reasons = {d.need: d.reason for d in result.needs}
    assert reasons["wfs"] == "Service WFS : la Géoplateforme y répond déjà (catégorie A)."
    assert reasons["access_restricted"].startswith("Accès restreint nominatif")
    assert "l'infrastructure régionale d'OPenIG le sert (catégorie C)" in reasons["access_restricted"]
    b = reasons["access_restricted_services"]
    assert "d'ici le 31/03/2027 (IGNF/cartes.gouv.fr#790)" in b
    assert "la livraison vers la Géoplateforme attend (catégorie B)" in b
    gtfs = classify(CASES[2].facts, rules)
    assert "data.gouv.fr y répond déjà" in {d.need: d.reason for d in gtfs.needs}["national_channel_gtfs"]


def test_urban_planning_reason_says_the_producer_deposits_on_the_gpu(rules: Rules) -> None:
    result = classify(CASES[0].facts, rules)
    reason = {d.need: d.reason for d in result.needs}["national_channel_urban_planning"]
    assert "dépôt au Géoportail de l'Urbanisme par le producteur" in reason


def test_explain(rules: Rules) -> None:
    lines = explain(classify(CASES[6].facts, rules))
    assert lines[0] == "Catégorie de la publication : C"
    assert lines[1] == f"Règles utilisées : empreinte {rules.digest[:12]}"
    assert "  - wfs [A] -> geoplateforme (règle service.wfs)" in lines
    assert any(line.strip().startswith("manque sur geoplateforme : date cible 31/03/2027") for line in lines)
    assert (
        "  - geoplateforme : access_restricted_services, wms, wfs, harvested_by_geoplateforme ; "
        "en attente de : access_restricted_services"
    ) in lines


def test_explain_of_an_empty_result() -> None:
    lines = explain(ClassificationResult("A", "0" * 64, ()))
    assert "  (aucun besoin dérivé)" in lines and "  (aucune cible)" in lines


def test_no_need_means_category_a(rules: Rules) -> None:
    data = rules.public_view()
    del data["need_order"]
    data["rules"] = [
        {
            "id": "only.never",
            "description": "Jamais.",
            "when": {"harvested_from_in": ["csw"]},
            "needs": ["wfs"],
        }
    ]
    empty = rules_from_data(data)
    result = classify(PublicationFacts(), empty)
    assert (result.category, result.needs, result.targets) == ("A", (), ())


def test_b_on_both_platforms_gives_one_gap_each(rules: Rules) -> None:
    """A need awaited on both platforms routes to both, one gap each, held only where interim is hold."""
    data = rules.public_view()
    del data["need_order"]
    data["needs"]["search_map"]["platforms"] = {
        "datagouv": {
            "category": "B",
            "source": "research/peers.md §11",
            "target_date": "2027-01-31",
            "target_date_set_by": "openig-agreement",
            "interim": "hold",
        },
        "geoplateforme": {
            "category": "B",
            "source": "research/peers.md §13",
            "upstream": "IGNF/cartes.gouv.fr#1100",
            "target_date": "2027-06-30",
            "target_date_set_by": "openig-agreement",
            "interim": "regional",
        },
    }
    both = rules_from_data(data)
    verdict = decide_need(both.needs["search_map"], both)
    assert verdict.category == "B" and verdict.platforms == ("datagouv", "geoplateforme")
    assert [(g.platform, g.interim) for g in verdict.gaps] == [
        ("datagouv", "hold"),
        ("geoplateforme", "regional"),
    ]
    result = classify(PublicationFacts(features=("search_map",)), both)
    plans = {t.target: t for t in result.targets}
    assert plans["datagouv"].held_by == ("search_map",)
    assert plans["geoplateforme"].held_by == ()
    assert "search_map" in plans["regional"].needs
    assert " ; " in {d.need: d.reason for d in result.needs}["search_map"]
