"""One rule, reported once: the connector's checks that repeat the intake's file rules are dropped."""

from __future__ import annotations

from broker.publications.service import _merge
from connectors.base import PreflightProblem


def problem(code: str, resource: str | None = "pistes.gpkg", severity: str = "warning") -> PreflightProblem:
    return PreflightProblem(
        target="geoplateforme",
        resource=resource,
        code=code,
        severity=severity,  # type: ignore[arg-type]
        message=code,
    )


def test_a_connector_check_repeating_an_intake_rule_is_dropped() -> None:
    merged = _merge(
        [problem("geoplateforme_column_name_normalised")],
        [problem("columns_renamed"), problem("permissions_manual", resource=None)],
    )
    assert [p.code for p in merged] == ["geoplateforme_column_name_normalised", "permissions_manual"]


def test_the_same_rule_on_another_file_is_kept() -> None:
    merged = _merge([problem("geoplateforme_column_name_normalised", "a.gpkg")], [problem("columns_renamed")])
    assert [p.code for p in merged] == ["geoplateforme_column_name_normalised", "columns_renamed"]


def test_connector_only_checks_are_kept() -> None:
    merged = _merge([], [problem("srs_mismatch", severity="error"), problem("service_not_applicable")])
    assert [p.code for p in merged] == ["srs_mismatch", "service_not_applicable"]
