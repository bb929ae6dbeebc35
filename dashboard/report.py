"""The board report: CSV tables, and one printable HTML page with its charts (the browser prints it to PDF).

Charts are rendered to inline SVG with ``vl-convert-python`` when it is installed, so the page needs no
network and prints crisply; without it, the page embeds the Vega-Lite specifications and loads vega-embed
from a CDN (the data tables are always there, so the report stays readable offline).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dashboard import charts, data, labels

REPORT_CHART_WIDTH = 560
REPORT_FONT = "DejaVu Sans, Verdana, sans-serif"


def csv_bytes(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> bytes:
    """CSV as French spreadsheets open it: `;` separators and a UTF-8 byte-order mark."""
    rows = list(rows)
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(key, None)
        columns = list(seen)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), delimiter=";", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buffer.getvalue().encode("utf-8-sig")


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float):
        return labels.french_number(value, 3).replace("\u202f", "")
    if value is None:
        return ""
    return value


@dataclass
class ReportData:
    """Everything the report shows; built by the *Rapport* page from the API (missing parts stay None)."""

    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    broker_url: str = ""
    publications_total: int | None = None
    by_category: dict[str, int] = field(default_factory=dict)
    national_share: float | None = None
    stats_available: bool = False  # the broker has GET /api/v1/stats/migration
    totals: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # data.history_rows
    by_organization: list[dict[str, Any]] = field(default_factory=list)  # data.breakdown_rows
    by_need: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] | None = None  # data.gap_rows; None: endpoint not available
    gaps_planned: bool = False  # the gaps come from the catalogue's B cells, not from the register
    deliveries: dict[str, int] = field(default_factory=dict)  # state -> count
    monthly: dict[str, Any] = field(default_factory=dict)  # data.monthly_summary
    category_counts: list[dict[str, Any]] = field(default_factory=list)  # data.category_counts


def chart_svg(chart: Any) -> str | None:
    """An Altair chart as standalone SVG, or None when vl-convert is not installed."""
    try:
        import vl_convert
    except ImportError:
        return None
    spec = chart.to_dict() if hasattr(chart, "to_dict") else dict(chart)
    # A printed chart has a fixed width: let the axis labels and legend add to it ("pad") rather than be
    # squeezed into it ("fit-x", right for the screen, clips long labels at the left edge of the SVG).
    spec["autosize"] = {"type": "pad"}
    # Labels are placed with vl-convert's text metrics: name a font it and the browsers both have (DejaVu
    # ships with Debian and is what Chromium falls back to), or long labels run off the SVG's left edge.
    spec.setdefault("config", {})["font"] = REPORT_FONT
    svg: str = vl_convert.vegalite_to_svg(json.dumps(spec))
    # Drop the XML prolog so the SVG can sit inline in HTML.
    return svg[svg.find("<svg") :] if "<svg" in svg else svg


def _chart_block(chart: Any, chart_id: str) -> str:
    svg = chart_svg(chart)
    if svg is not None:
        return f'<figure class="chart">{svg}</figure>'
    spec = json.dumps(chart.to_dict(), ensure_ascii=False).replace("</", "<\\/")
    return (
        f'<figure class="chart" id="{chart_id}"></figure>'
        f'<script type="application/json" id="{chart_id}-spec">{spec}</script>'
    )


_VEGA_EMBED = """
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-lite@5"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-embed@6"></script>
<script>
document.querySelectorAll('script[type="application/json"][id$="-spec"]').forEach(function (node) {
  var target = document.getElementById(node.id.replace(/-spec$/, ''));
  if (window.vegaEmbed && target) { vegaEmbed(target, JSON.parse(node.textContent), {actions: false}); }
});
</script>
"""

_STYLE = """
:root { --a: #2e7d32; --b: #ef6c00; --c: #1565c0; --muted: #5f6368; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Verdana, system-ui, sans-serif; color: #1f1f1f; margin: 0 auto;
       max-width: 200mm; padding: 12mm 10mm; line-height: 1.4; font-size: 11pt; }
h1 { font-size: 20pt; margin: 0 0 2mm; }
h2 { font-size: 14pt; margin: 8mm 0 3mm; border-bottom: 2px solid #ddd; padding-bottom: 1mm; }
.meta { color: var(--muted); font-size: 9.5pt; }
.figures { display: grid; grid-template-columns: repeat(4, 1fr); gap: 4mm; margin: 5mm 0; }
.figure { border: 1px solid #ddd; border-radius: 2mm; padding: 3mm; }
.figure .value { font-size: 18pt; font-weight: bold; }
.figure .label { color: var(--muted); font-size: 9pt; }
table { border-collapse: collapse; width: 100%; font-size: 9.5pt; margin: 2mm 0 4mm; }
th, td { border: 1px solid #ccc; padding: 1.2mm 2mm; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; }
tr.late td { background: #fff3e0; }
.chart svg { max-width: 100%; height: auto; }
.chart { margin: 2mm 0; }
.note { color: var(--muted); font-style: italic; }
.toolbar { margin-bottom: 6mm; }
.toolbar button { font-size: 11pt; padding: 2mm 5mm; cursor: pointer; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { padding: 0; max-width: none; }
  .toolbar { display: none; }
  section, figure, table, .figures { break-inside: avoid; }
  h2 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], late_key: str | None = None) -> str:
    if not rows:
        return '<p class="note">Aucune ligne.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if isinstance(value, bool):
                value = "oui" if value else "non"
            number = isinstance(value, (int, float))
            if isinstance(value, float):
                value = labels.french_number(value, 1)
            text = html.escape(str(value if value is not None else "—"))
            cells.append(f'<td class="{"num" if number else ""}">{text}</td>')
        css = ' class="late"' if late_key and row.get(late_key) else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(value: str, label: str) -> str:
    return (
        f'<div class="figure"><div class="value">{html.escape(value)}</div>'
        f'<div class="label">{html.escape(label)}</div></div>'
    )


def build_html(report: ReportData) -> str:
    """The whole report as one self-contained HTML page, with a print stylesheet."""
    gaps = report.gaps
    counts = data.gap_counts([{"status": _status_id(g), "late": g.get("En retard")} for g in gaps or []])
    figures = [
        _figure(
            "—" if report.publications_total is None else labels.french_number(report.publications_total),
            "publications",
        ),
        _figure(labels.percent(report.national_share), "servies nationalement"),
        _figure(
            "—" if gaps is None else f"{counts['open']} / {counts['late']}",
            "écarts ouverts / en retard",
        ),
        _figure(labels.french_number(report.deliveries.get("failed", 0)), "livraisons en échec"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="fr"><head><meta charset="utf-8">',
        "<title>Rapport au conseil d'administration — broker OPenIG</title>",
        f"<style>{_STYLE}</style></head><body>",
        '<div class="toolbar"><button onclick="window.print()">Imprimer ou enregistrer en PDF</button></div>',
        "<header><h1>Migration vers les plateformes nationales</h1>",
        "<p class=\"meta\">Rapport au conseil d'administration d'OPenIG — généré le "
        f"{html.escape(labels.french_datetime(report.generated_at))}"
        + (f" depuis {html.escape(report.broker_url)}" if report.broker_url else "")
        + "</p></header>",
        f'<section class="figures">{"".join(figures)}</section>',
    ]

    parts.append("<section><h2>Progression de la migration</h2>")
    if report.history:
        parts.append(_chart_block(charts.share_over_time(report.history, width=REPORT_CHART_WIDTH), "share"))
    elif report.stats_available:
        parts.append('<p class="note">Pas encore d\'historique : un relevé est enregistré chaque jour.</p>')
    else:
        parts.append('<p class="note">Historique de la migration pas encore disponible sur ce broker.</p>')
    if report.by_category:
        rows = [
            {"Catégorie": c, "Sens": labels.CATEGORY_MEANING.get(c, ""), "Publications": n}
            for c, n in sorted(report.by_category.items())
        ]
        parts.append(_table(rows, ["Catégorie", "Sens", "Publications"]))
    parts.append("</section>")

    if report.by_organization:
        parts.append("<section><h2>Par organisation</h2>")
        parts.append(
            _chart_block(
                charts.breakdown(
                    report.by_organization, "Publications par organisation", width=REPORT_CHART_WIDTH
                ),
                "orgs",
            )
        )
        parts.append("</section>")
    if report.by_need:
        parts.append("<section><h2>Par besoin</h2>")
        keys = ["libellé", "publications", "national", "regional", "both", "national_share"]
        rows = data.stat_table([{k: r[k] for k in keys if k in r} for r in report.by_need])
        columns = [data.STAT_COLUMNS[k] for k in keys if any(k in r for r in report.by_need)]
        parts.append(_table(rows, columns))
        parts.append("</section>")

    parts.append("<section><h2>Écarts nationaux</h2>")
    if gaps is None:
        parts.append('<p class="note">Registre des écarts pas encore disponible sur ce broker.</p>')
    else:
        if report.gaps_planned:
            parts.append(
                '<p class="note">Dates cibles du catalogue des besoins (categories.yaml) ; le registre '
                "des écarts, avec les glissements et les publications en attente, n'est pas encore "
                "disponible.</p>"
            )
        columns = [
            "Besoin",
            "Plateforme",
            "Date cible",
            "Statut",
            "Jours de retard",
            "Publications en attente",
        ]
        shown = [{**g, "Date cible": labels.french_date(g.get("Date cible"))} for g in gaps]
        parts.append(_table(shown, columns, late_key="En retard"))
    parts.append("</section>")

    if report.monthly:
        parts.append("<section><h2>Ce qui a changé ces 30 derniers jours</h2>")
        sentences = report.monthly.get("sentences") or []
        if sentences:
            parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>")
        else:
            parts.append('<p class="note">Aucun changement enregistré.</p>')
        parts.append("</section>")

    if report.category_counts:
        parts.append("<section><h2>Catégories des besoins</h2>")
        parts.append(
            _chart_block(
                charts.category_counts_chart(report.category_counts, width=REPORT_CHART_WIDTH), "cats"
            )
        )
        parts.append(_table(report.category_counts, ["Plateforme", "A", "B", "C"]))
        parts.append("</section>")

    if report.deliveries:
        rows = [
            {"État": labels.label(labels.DELIVERY_STATES, s), "Livraisons": n}
            for s, n in sorted(report.deliveries.items())
        ]
        parts.append("<section><h2>Livraisons</h2>" + _table(rows, ["État", "Livraisons"]) + "</section>")

    if any('type="application/json"' in p for p in parts):
        parts.append(_VEGA_EMBED)
    parts.append("</body></html>")
    return "\n".join(parts)


def _status_id(gap_row: Mapping[str, Any]) -> str:
    french_to_id = {v: k for k, v in labels.GAP_STATUSES.items()}
    return french_to_id.get(str(gap_row.get("Statut")), "open")
