"""Revision -> data.gouv.fr payload mapping, as tables of realistic French cases."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import Contact, OrganizationRef, PublicationRevision, ResourceFile
from connectors.datagouv import mapping

ORG = OrganizationRef(
    id="o1", slug="sete-agglopole", name="Sète Agglopôle Méditerranée", remote={"datagouv": "a" * 24}
)


def revision(**fields: Any) -> PublicationRevision:
    values: dict[str, Any] = {
        "publication_id": "pub-42",
        "revision": 3,
        "organization": ORG,
        "title": "Plan local d'urbanisme de Sète",
        "description": "Zonage et prescriptions du PLU approuvé en 2023.",
    }
    values.update(fields)
    return PublicationRevision.model_validate(values)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("lov2", "lov2"),
        ("Licence Ouverte 2.0", "lov2"),
        ("Licence Ouverte / Open Licence version 2.0", "lov2"),
        ("etalab-2.0", "lov2"),
        ("Etalab-1.0", "fr-lo"),
        ("fr-lo", "fr-lo"),
        ("ODbL", "odc-odbl"),
        ("ODbL-1.0", "odc-odbl"),
        ("CC-BY 4.0", "cc-by"),
        ("CC-BY-SA-4.0", "cc-by-sa"),
        ("CC0", "cc-zero"),
        ("Domaine public", "other-pd"),
        ("Licence propriétaire du SDIS", "Licence propriétaire du SDIS"),  # the server decides
        ("", None),
        (None, None),
    ],
)
def test_licences(given: str | None, expected: str | None) -> None:
    assert mapping.map_license(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("quarterly", "quarterly"),
        ("Trimestrielle", "quarterly"),
        ("mensuelle", "monthly"),
        ("Hebdomadaire", "weekly"),
        ("Quotidienne", "daily"),
        ("annuelle", "annual"),
        ("temps réel", "continuous"),
        ("Ponctuelle", "punctual"),
        ("irrégulière", "irregular"),
        ("annually", "annual"),  # ISO 19115 MD_MaintenanceFrequencyCode
        ("asNeeded", "punctual"),
        ("notPlanned", "notPlanned"),
        ("biannual", "semiannual"),  # legacy udata id
        ("fourTimesADay", "severalTimesADay"),
        ("au fil de l'eau", "au fil de l'eau"),  # unknown: passed through, pre-flight flags it
        (None, None),
    ],
)
def test_frequencies(given: str | None, expected: str | None) -> None:
    assert mapping.map_frequency(given) == expected


@pytest.mark.parametrize(
    ("keywords", "tags", "dropped"),
    [
        (("Vélo", "Mobilité douce"), ["velo", "mobilite-douce"], []),
        (("PLU", "Plan local d'urbanisme"), ["plu", "plan-local-d-urbanisme"], []),
        (("Œuvres d'art", "Cœur de ville"), ["oeuvres-d-art", "coeur-de-ville"], []),
        (("Vélo", "velo", "VÉLO "), ["velo"], []),  # one tag once slugified
        (("eau", "SIG", "RD"), ["eau", "sig"], ["RD"]),  # at least 3 characters
        (("é", "--", "Hérault"), ["herault"], ["é", "--"]),
        (("a" * 120,), ["a" * 96], []),  # cut at 96 like udata's tags.normalize
        (("Très " * 30,), [("tres-" * 20)[:96].rstrip("-")], []),
    ],
)
def test_tags(keywords: tuple[str, ...], tags: list[str], dropped: list[str]) -> None:
    assert mapping.map_tags(keywords) == (tags, dropped)
    assert all(3 <= len(tag) <= 96 for tag in tags)


MONTPELLIER_BBOX = (3.8070, 43.5667, 3.9413, 43.6533)


@pytest.mark.parametrize(
    ("fields", "spatial"),
    [
        ({"spatial_zones": ("fr:commune:34172",)}, {"zones": ["fr:commune:34172"], "geom": None}),
        (
            {
                "spatial_zones": ("FR:Departement:34@1860-07-01", "fr/region/76"),
                "extent_wgs84": MONTPELLIER_BBOX,
            },
            {"zones": ["fr:departement:34", "fr:region:76"], "geom": None},  # zones win over the extent
        ),
        (
            {"extent_wgs84": MONTPELLIER_BBOX},
            {
                "zones": [],
                "geom": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [
                            [
                                [3.8070, 43.5667],
                                [3.9413, 43.5667],
                                [3.9413, 43.6533],
                                [3.8070, 43.6533],
                                [3.8070, 43.5667],
                            ]
                        ]
                    ],
                },
            },
        ),
        # Corners swapped: not a bbox.
        ({"extent_wgs84": (3.9413, 43.6533, 3.8070, 43.5667)}, {"zones": [], "geom": None}),
        ({"extent_wgs84": (200.0, 43.5, 201.0, 43.6)}, {"zones": [], "geom": None}),
        ({}, {"zones": [], "geom": None}),
        ({"spatial_zones": ("Montpellier",)}, {"zones": [], "geom": None}),  # not a geoid: pre-flight error
    ],
)
def test_spatial(fields: dict[str, Any], spatial: dict[str, Any]) -> None:
    assert mapping.map_spatial(revision(**fields)) == spatial


def test_open_payload_on_create_and_update() -> None:
    rev = revision(
        license="Licence Ouverte 2.0",
        keywords=("urbanisme", "PLU"),
        frequency="annuelle",
        temporal={"start": "2023-03-01", "end": "2033-03-01"},
        contact=Contact(name="Service urbanisme", email="urbanisme@sete.fr"),
    )
    created = mapping.dataset_payload(
        rev, private=False, contact_point="c1", organization_id="a" * 24, create=True
    )
    assert created == {
        "title": "Plan local d'urbanisme de Sète",
        "description": "Zonage et prescriptions du PLU approuvé en 2023.",
        "tags": ["urbanisme", "plu"],
        "frequency": "annual",
        "temporal_coverage": {"start": "2023-03-01", "end": "2033-03-01"},
        "spatial": {"zones": [], "geom": None},
        "private": False,
        "access_type": "open",
        "authorization_request_url": None,
        "license": "lov2",
        "contact_points": ["c1"],
        "organization": "a" * 24,
        "extras": {mapping.PUBLICATION_KEY: "pub-42", mapping.REVISION_KEY: 3},
    }
    updated = mapping.dataset_payload(rev, private=True)
    assert "organization" not in updated and "extras" not in updated  # never on PUT
    assert updated["private"] is True  # always explicit
    assert updated["contact_points"] is None  # null clears, [] would not


def test_restricted_payload() -> None:
    rev = revision(
        access="restricted",
        license="lov2",
        restricted_organizations=("sdis34",),
        access_request_url="https://broker.openig.org/publications/pub-42/demande-acces",
    )
    payload = mapping.dataset_payload(rev, private=False)
    assert payload["access_type"] == "restricted"
    assert (
        payload["authorization_request_url"] == "https://broker.openig.org/publications/pub-42/demande-acces"
    )
    assert payload["license"] is None


@pytest.mark.parametrize(
    ("url", "allow_local", "problem"),
    [
        ("https://data.montpellier3m.fr/pistes.csv", False, None),
        ("ftp://ftp.herault.fr/routes.zip", False, None),
        ("http://localhost:8000/a.csv", False, "adresse locale"),
        ("http://127.0.0.1:8000/a.csv", False, "adresse locale"),
        ("http://127.0.0.1:8000/a.csv", True, None),
        ("https://192.168.1.20/a.csv", False, "adresse privée"),
        ("https://[fd00::1]/a.csv", False, "adresse privée"),
        ("https://sig.mairie.local/a.csv", False, "nom d'hôte sans domaine public"),
        ("https://intranet/a.csv", False, "nom d'hôte sans domaine public"),
        ("file:///srv/data/a.csv", False, "seules les URL http, https, ftp et ftps complètes sont acceptées"),
        ("https://user:secret@data.example.org/a.csv", False, "les identifiants dans l'URL sont refusés"),
    ],
)
def test_url_problems(url: str, allow_local: bool, problem: str | None) -> None:
    assert mapping.url_problem(url, allow_local=allow_local) == problem


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("pistes.gpkg", True),
        ("pistes.GeoJSON", True),
        ("cadastre.shp", True),
        ("archive.tar.gz", True),
        ("ortho.tiff", True),
        ("ortho.tif", False),  # only "tiff" is in udata's list
        ("trafic.parquet", False),
        ("dalles.laz", False),
        ("sans_extension", False),
    ],
)
def test_upload_extensions(name: str, allowed: bool) -> None:
    assert mapping.upload_allowed(name) is allowed


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("Pistes Cyclables 2024.GPKG", "pistes-cyclables-2024.gpkg"),
        ("compteurs_vélo.csv", "compteurs-velo.csv"),
        ("Œuvres d'art.geojson", "oeuvres-d-art.geojson"),
    ],
)
def test_stored_filename(name: str, stored: str) -> None:
    """The name udata stores an upload under; the upload's title is this name (research §3)."""
    assert mapping.stored_filename(name) == stored


@pytest.mark.parametrize(
    ("kind", "expected"), [("vector", "main"), ("document", "documentation"), ("api", "api"), (None, "main")]
)
def test_resource_type(kind: str | None, expected: str) -> None:
    assert mapping.resource_type(ResourceFile(name="x.csv", kind=kind)) == expected


def test_resource_payloads_keep_other_extras() -> None:
    resource = ResourceFile(name="pistes.csv", title="Pistes (CSV)", sha256="ab" * 32, format="CSV", size=10)
    meta = mapping.hosted_metadata(resource, {"check:available": True})
    assert meta == {
        "title": "Pistes (CSV)",
        "description": "",
        "type": "main",
        "extras": {
            "check:available": True,
            mapping.RESOURCE_KEY: {"name": "pistes.csv", "sha256": "ab" * 32},
        },
    }
    remote = mapping.remote_payload(resource, "https://data.example.org/pistes.csv")
    assert remote["filetype"] == "remote" and remote["format"] == "csv" and remote["filesize"] == 10
    assert remote["checksum"] == {"type": "sha256", "value": "ab" * 32}
