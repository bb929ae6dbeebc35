"""Manifest validation: every bad field is reported with its path, in words a producer understands."""

from __future__ import annotations

import pytest

from broker.errors import InvalidInput
from broker.publications.manifest import parse_manifest_text, validate_manifest

GOOD = """
organization: montpellier-mediterranee-metropole
title: Pistes cyclables
description: Réseau cyclable de la métropole, mis à jour chaque trimestre.
license: lov2
keywords: [mobilite, velo]
frequency: quarterly
temporal: {start: 2024-01-01}
contact: {name: Service SIG, email: sig@example.fr}
access: open
services: [download, wfs, wms]
resources:
  - file: pistes_cyclables.gpkg
    title: Pistes cyclables (GeoPackage)
  - url: https://example.org/compteurs.csv
    sync: weekly
"""


def test_the_design_example_is_valid() -> None:
    manifest = validate_manifest(parse_manifest_text(GOOD))
    assert manifest.organization == "montpellier-mediterranee-metropole"
    assert manifest.temporal is not None and manifest.temporal.start.isoformat() == "2024-01-01"
    assert [r.name for r in manifest.resources] == ["pistes_cyclables.gpkg", "compteurs.csv"]


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"license": "cc-by-nc"}, "license", "non reconnue"),
        ({"frequency": "trimestriel"}, "frequency", "non reconnue"),
        ({"services": ["wfs", "wcs"]}, "services.1", "non reconnue"),
        ({"access": "private"}, "access", "non reconnue"),
        ({"title": ""}, "title", "au moins"),
        ({"temporal": {"start": "2024-13-45"}}, "temporal.start", "format"),
        ({"contact": {"email": "sig-at-example.fr"}}, "contact.email", "mal formée"),
        ({"resources": []}, "resources", "au moins 1"),
        ({"resources": [{"title": "sans fichier"}]}, "resources.0", "soit « file »"),
        ({"resources": [{"file": "a.gpkg", "url": "https://x.org/a.gpkg"}]}, "resources.0", "soit « file »"),
        ({"resources": [{"url": "file:///etc/passwd"}]}, "resources.0.url", "mal formée"),
        ({"colour": "bleu"}, "colour", "champ inconnu"),
        ({"organization": "Montpellier Métropole"}, "organization", "mal formée"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, object], field: str, fragment: str) -> None:
    data = parse_manifest_text(GOOD)
    data.update(change)
    with pytest.raises(InvalidInput) as caught:
        validate_manifest(data)
    assert field in caught.value.fields, caught.value.fields
    assert any(fragment in message for message in caught.value.fields[field])


def test_every_error_is_listed_at_once() -> None:
    data = parse_manifest_text(GOOD)
    data.update({"license": "x", "frequency": "y", "title": ""})
    del data["description"]
    with pytest.raises(InvalidInput) as caught:
        validate_manifest(data)
    assert {"license", "frequency", "title", "description"} <= set(caught.value.fields)
    assert caught.value.status_code == 422


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"temporal": {"start": "2024-06-01", "end": "2024-01-01"}}, "temporal.end"),
        ({"access": "restricted"}, "restricted_to"),
        ({"resources": [{"file": "../etc/passwd"}]}, "resources.0.file"),
        ({"resources": [{"file": "a.gpkg"}, {"file": "a.gpkg"}]}, "resources.1.file"),
    ],
)
def test_cross_field_rules(change: dict[str, object], field: str) -> None:
    data = parse_manifest_text(GOOD)
    data.update(change)
    with pytest.raises(InvalidInput) as caught:
        validate_manifest(data)
    assert field in caught.value.fields


def test_unparseable_manifest_names_the_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_manifest_text("title: [unclosed\norganization: x\n")
    assert "ligne" in caught.value.detail


def test_a_list_is_not_a_manifest() -> None:
    with pytest.raises(InvalidInput):
        parse_manifest_text("- a\n- b\n")
