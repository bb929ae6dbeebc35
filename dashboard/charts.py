"""Altair charts of the dashboard and of the board report, with French number and date formats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt

from dashboard import data, labels

# d3 locales for fr-FR, so axes read "45 %" and "mars 2027" in every chart (Vega-Lite `config.locale`).
FRENCH_LOCALE: dict[str, Any] = {
    "number": {
        "decimal": ",",
        "thousands": "\u202f",
        "grouping": [3],
        "currency": ["", "\u00a0€"],
        "percent": "\u202f%",
    },
    "time": {
        "dateTime": "%A %e %B %Y à %X",
        "date": "%d/%m/%Y",
        "time": "%H:%M:%S",
        "periods": ["AM", "PM"],
        "days": ["dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"],
        "shortDays": ["dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."],
        "months": [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ],
        "shortMonths": [
            "janv.",
            "févr.",
            "mars",
            "avr.",
            "mai",
            "juin",
            "juil.",
            "août",
            "sept.",
            "oct.",
            "nov.",
            "déc.",
        ],
    },
}

# "nationale": served by data.gouv.fr or the Géoplateforme (maybe regionally too); the rest is regional only.
SERIES_COLOURS = alt.Scale(domain=["nationale", "régionale seulement"], range=["#2e7d32", "#1565c0"])


def french(chart: Any) -> Any:
    """Apply the French locale (numbers and dates) to a top-level chart, and size it by its plot area.

    Streamlit's default autosize ``fit`` squeezes the axes, title and legend into the declared height, so
    a chart of a few rows collapses; ``fit-x`` fills the width and keeps the height we asked for.
    """
    sized = chart.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    return sized.configure(locale=FRENCH_LOCALE, legend={"labelLimit": 260, "titleLimit": 260})


def share_over_time(rows: Sequence[Mapping[str, Any]], *, width: int | str = "container") -> Any:
    """Stacked areas: share of publications served nationally vs regionally, over time.

    Points mark each daily snapshot, so the first day already shows something.
    """
    values = alt.Data(values=[dict(r) for r in rows])
    chart = (
        alt.Chart(values, title="Part des publications servies nationalement")
        .mark_area(opacity=0.85, line=True, point=alt.OverlayMarkDef(size=60, filled=True))
        .encode(
            x=alt.X("date:T", title=None, axis=alt.Axis(format="%b %Y", tickCount="month")),
            y=alt.Y("part:Q", title="Part", stack="normalize", axis=alt.Axis(format="%")),
            color=alt.Color("série:N", title="Service", scale=SERIES_COLOURS),
            tooltip=[
                alt.Tooltip("date:T", title="Date", format="%d/%m/%Y"),
                alt.Tooltip("série:N", title="Service"),
                alt.Tooltip("part:Q", title="Part", format=".0%"),
            ],
        )
        .properties(width=width, height=260)
    )
    return french(chart)


def breakdown(
    rows: Sequence[Mapping[str, Any]],
    title: str,
    *,
    series: Sequence[str] = ("national", "regional", "both"),
    width: int | str = "container",
) -> Any:
    """Horizontal stacked bars (national / regional counts) per organisation, need or platform."""
    names = {"national": "nationale seulement", "regional": "régionale seulement", "both": "les deux"}
    values = []
    present = [s for s in series if any(s in r for r in rows)]
    if not present:  # no national/regional split: plot every count column there is
        present = sorted({k for r in rows for k in r if k != "libellé"})
    for row in rows:
        for key, count in data.exclusive_parts(row, present).items():
            values.append({"libellé": row.get("libellé"), "série": names.get(key, key), "nombre": count})
    height = max(120, 24 * len(rows))
    chart = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("libellé:N", title=None, sort="-x", axis=alt.Axis(labelLimit=260)),
            x=alt.X("sum(nombre):Q", title="Publications", axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color(
                "série:N",
                title="Service",
                scale=alt.Scale(domain=list(names.values()), range=["#2e7d32", "#1565c0", "#7b1fa2"])
                if set(present) <= set(names)
                else alt.Undefined,
            ),
            tooltip=[
                alt.Tooltip("libellé:N", title="Nom"),
                alt.Tooltip("série:N", title="Série"),
                alt.Tooltip("nombre:Q", title="Nombre"),
            ],
        )
        .properties(width=width, height=height)
    )
    return french(chart)


def gaps_timeline(
    points: Sequence[Mapping[str, Any]],
    slips: Sequence[Mapping[str, Any]],
    today: str,
    *,
    width: int | str = "container",
) -> Any:
    """Target date of each gap (a dot) and each recorded slip (a bar from the old date to the new one)."""
    names = sorted({str(p["gap"]) for p in points} | {str(s["gap"]) for s in slips})
    height = max(140, 28 * len(names))
    y = alt.Y("gap:N", title=None, sort=names, axis=alt.Axis(labelLimit=360))
    slip_layer = (
        alt.Chart(alt.Data(values=[dict(s) for s in slips]))
        .mark_bar(height=6, color="#ef6c00", opacity=0.6)
        .encode(
            y=y,
            x=alt.X("de:T", title="Date cible"),
            x2="à:T",
            tooltip=[
                alt.Tooltip("gap:N", title="Écart"),
                alt.Tooltip("de:T", title="Ancienne date", format="%d/%m/%Y"),
                alt.Tooltip("à:T", title="Nouvelle date", format="%d/%m/%Y"),
                alt.Tooltip("jours:Q", title="Glissement (jours)"),
                alt.Tooltip("motif:N", title="Motif"),
            ],
        )
    )
    point_layer = (
        alt.Chart(alt.Data(values=[dict(p) for p in points]))
        .mark_point(filled=True, size=110)
        .encode(
            y=y,
            x=alt.X("date:T", title="Date cible", axis=alt.Axis(format="%b %Y", tickCount="month")),
            color=alt.Color(
                "statut:N",
                title="Statut",
                scale=alt.Scale(
                    domain=[labels.GAP_STATUSES[s] for s in ("open", "delivered", "dropped")],
                    range=["#ef6c00", "#2e7d32", "#9e9e9e"],
                ),
            ),
            shape=alt.condition("datum.retard > 0", alt.value("diamond"), alt.value("circle")),
            tooltip=[
                alt.Tooltip("gap:N", title="Écart"),
                alt.Tooltip("date:T", title="Date cible", format="%d/%m/%Y"),
                alt.Tooltip("statut:N", title="Statut"),
                alt.Tooltip("retard:Q", title="Jours de retard"),
            ],
        )
    )
    today_rule = (
        alt.Chart(alt.Data(values=[{"date": today, "label": "aujourd'hui"}]))
        .mark_rule(color="#c62828", strokeDash=[4, 4])
        .encode(x="date:T", tooltip=[alt.Tooltip("label:N", title="")])
    )
    chart = alt.layer(slip_layer, point_layer, today_rule).properties(
        width=width, height=height, title="Dates cibles des écarts nationaux et glissements"
    )
    return french(chart)


def category_counts_chart(rows: Sequence[Mapping[str, Any]], *, width: int | str = "container") -> Any:
    """Number of needs per platform in each category."""
    values = [
        {"Plateforme": r["Plateforme"], "catégorie": c, "besoins": r.get(c, 0)}
        for r in rows
        for c in ("A", "B", "C")
    ]
    chart = (
        alt.Chart(alt.Data(values=values), title="Besoins par catégorie et par plateforme")
        .mark_bar()
        .encode(
            y=alt.Y("Plateforme:N", title=None, axis=alt.Axis(labelLimit=320)),
            x=alt.X("sum(besoins):Q", title="Besoins", axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color(
                "catégorie:N",
                title="Catégorie",
                scale=alt.Scale(domain=["A", "B", "C"], range=[labels.CATEGORY_HEX[c] for c in "ABC"]),
            ),
            order=alt.Order("catégorie:N"),
            tooltip=["Plateforme:N", "catégorie:N", "besoins:Q"],
        )
        .properties(width=width, height=32 * max(1, len(rows)))
    )
    return french(chart)
