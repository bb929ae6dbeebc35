"""Per-target pre-flight rules on an inspected file: every problem at once, before anything is sent.

Each problem has a stable ``code`` (for the API, the dashboard and tests) and a French message a GIS
technician can act on. ``error`` blocks the delivery to that target; ``warning`` informs (a format the
target only keeps as a download, a guess the broker made, a large file sent in parts).

Sources: research ``datagouv-api.md`` §3 and §7 (extension whitelist, chunked upload),
``geoplateforme-api.md`` §2.2 and §4 (formats, SRS, table/column naming, size caps).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from broker.intake.detect import FileDescription
from broker.intake.formats import (
    DATAGOUV_ALLOWED_EXTENSIONS,
    DATAGOUV_CHUNK_BYTES,
    GEOPLATEFORME_CSV_GEOMETRY_NAMES,
    GEOPLATEFORME_CSV_X_NAMES,
    GEOPLATEFORME_CSV_Y_NAMES,
    GEOPLATEFORME_MAX_BYTES,
    GEOPLATEFORME_MAX_ZIP_ENTRY_BYTES,
    GEOPLATEFORME_MAX_ZIP_FILES,
    GEOPLATEFORME_RASTER_FORMATS,
    GEOPLATEFORME_VECTOR_FORMATS,
    POSTGRES_MAX_IDENTIFIER,
    extension_of,
    human_size,
    stem_of,
)
from connectors.base import PreflightProblem

logger = logging.getLogger(__name__)

TARGETS = ("datagouv", "geoplateforme", "regional")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def preflight(
    description: FileDescription, name: str, target: str, *, max_bytes: int | None = None
) -> list[PreflightProblem]:
    """Problems ``target`` would have with this file. ``max_bytes`` caps the regional store (None: no cap)."""
    rules: dict[str, Callable[[_Context], None]] = {
        "datagouv": _datagouv,
        "geoplateforme": _geoplateforme,
        "regional": _regional,
    }
    if target not in rules:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    context = _Context(description, name, target, max_bytes)
    rules[target](context)
    return context.problems


class _Context:
    def __init__(self, description: FileDescription, name: str, target: str, max_bytes: int | None) -> None:
        self.description = description
        self.name = name
        self.target = target
        self.max_bytes = max_bytes
        self.problems: list[PreflightProblem] = []
        size = description.details.get("size")
        self.size: int | None = size if isinstance(size, int) else None

    def error(self, code: str, message: str) -> None:
        self.problems.append(
            PreflightProblem(target=self.target, resource=self.name, code=code, message=message)
        )

    def warning(self, code: str, message: str) -> None:
        self.problems.append(
            PreflightProblem(
                target=self.target, resource=self.name, severity="warning", code=code, message=message
            )
        )


# --------------------------------------------------------------------------------------------- data.gouv.fr


def _datagouv(ctx: _Context) -> None:
    description, name = ctx.description, ctx.name
    ext = extension_of(name)
    if not ext:
        ctx.error(
            "datagouv_extension_missing",
            f"« {name} » n'a pas d'extension : data.gouv.fr refuse les fichiers sans extension reconnue.",
        )
    elif ext not in DATAGOUV_ALLOWED_EXTENSIONS:
        hint = (
            " Renommez-le en « .tiff » : c'est la seule extension TIFF de sa liste."
            if ext == "tif"
            else (" Zippez-le, ou publiez-le par lien." if description.kind != "archive" else "")
        )
        ctx.error(
            "datagouv_extension_refused",
            f"data.gouv.fr refuse l'extension « .{ext} » de « {name} » (liste des extensions autorisées "
            f"de udata, /api/1/datasets/extensions/).{hint}",
        )
    if description.format == "html" or (description.media_type or "").startswith("text/html"):
        ctx.error(
            "datagouv_html_refused",
            f"« {name} » est une page HTML : data.gouv.fr la refuse "
            "(415 « Incorrect file content type: HTML »).",
        )
    if description.format == "shp" and description.details.get("container") != "zip":
        ctx.warning(
            "datagouv_shapefile_parts",
            f"« {name} » est un Shapefile publié fichier par fichier : sur data.gouv.fr, "
            "chaque partie devient une ressource séparée, inutilisable seule. "
            "Publiez plutôt une archive .zip.",
        )
    if ctx.size is not None and ctx.size > DATAGOUV_CHUNK_BYTES:
        parts = -(-ctx.size // DATAGOUV_CHUNK_BYTES)
        ctx.warning(
            "datagouv_chunked_upload",
            f"« {name} » pèse {human_size(ctx.size)} : il sera envoyé en {parts} morceaux de 20 Mo "
            "(envoi fractionné de data.gouv.fr). Rien à faire de votre côté.",
        )


# --------------------------------------------------------------------------------------------- Géoplateforme


def normalise_identifier(name: str) -> str | None:
    """The Géoplateforme's table/column rule ``[a-z_][a-z0-9_]*``, applied the way its integration does
    (lower case, no accents, no hyphens; research §2.2); None when nothing usable is left."""
    decomposed = unicodedata.normalize("NFKD", name)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    tokens = re.split(r"[^a-z0-9_]+", folded)
    result = "_".join(t for t in tokens if t)
    if not result:
        return None
    if result[0].isdigit():
        result = "_" + result
    return result[:POSTGRES_MAX_IDENTIFIER]


def upload_type(description: FileDescription) -> str:
    """VECTOR, RASTER or ARCHIVE: the Entrepôt upload type this file would go in as (research §2.1)."""
    fmt = description.format
    if fmt in GEOPLATEFORME_RASTER_FORMATS:
        return "RASTER"
    if fmt == "csv":
        return "VECTOR" if description.details.get("geometry_columns") else "ARCHIVE"
    if fmt in GEOPLATEFORME_VECTOR_FORMATS:
        return "VECTOR"
    return "ARCHIVE"


def _geoplateforme(ctx: _Context) -> None:
    description, name = ctx.description, ctx.name
    kind = upload_type(description)
    if kind == "ARCHIVE":
        what = _what(description)
        ctx.warning(
            "geoplateforme_archive_only",
            f"« {name} » ({what}) n'est pas un format que la Géoplateforme intègre en base ou en pyramide : "
            "il n'y sera déposé que comme fichier à télécharger (livraison de type ARCHIVE).",
        )
        duplicates = (description.details.get("archive") or {}).get("duplicate_basenames") or []
        if duplicates:
            ctx.error(
                "geoplateforme_archive_duplicate_names",
                f"« {name} » contient plusieurs fichiers de même nom ({', '.join(duplicates[:5])}) : la "
                "Géoplateforme range les archives à plat et n'en garderait qu'un. Renommez-les.",
            )
    else:
        _srs(ctx)
    if description.format == "cog":
        ctx.warning(
            "geoplateforme_cog_as_geotiff",
            f"« {name} » est un COG : il sera livré comme un GeoTIFF, que la Géoplateforme accepte "
            "(NON CONFIRMÉ pour le profil COG lui-même).",
        )
    if kind == "VECTOR":
        _names(ctx)
        if description.format == "csv":
            _csv_geometry(ctx)
    _sizes(ctx)


def _what(description: FileDescription) -> str:
    labels = {
        "gtfs": "flux GTFS",
        "zip": "archive ZIP",
        "pdf": "document PDF",
        "png": "image PNG",
        "json": "JSON",
        "csv": "CSV sans colonne de géométrie",
    }
    return labels.get(description.format or "", f"format {description.format or 'inconnu'}")


def _srs(ctx: _Context) -> None:
    description, name = ctx.description, ctx.name
    layers: list[dict[str, Any]] = description.details.get("layers") or []
    codes = sorted({str(layer["crs"]) for layer in layers if layer.get("geometry_type") and layer.get("crs")})
    if len(codes) > 1:
        ctx.error(
            "geoplateforme_srs_mixed",
            f"Les couches de « {name} » sont dans des projections différentes ({', '.join(codes)}) : une "
            "livraison Géoplateforme n'en déclare qu'une. Reprojetez-les dans la même.",
        )
        return
    crs = description.crs
    if crs is None:
        ctx.error(
            "geoplateforme_srs_unknown",
            f"La projection de « {name} » est inconnue : la Géoplateforme exige un code EPSG déclaré et "
            "conforme aux données. Ajoutez-la (fichier .prj, métadonnées du GeoTIFF…).",
        )
    elif not crs.startswith("EPSG:"):
        hint = " (IGNF:LAMB93 correspond à EPSG:2154)" if crs.upper() == "IGNF:LAMB93" else ""
        ctx.error(
            "geoplateforme_srs_not_epsg",
            f"La projection de « {name} » ({crs}) n'a pas de code EPSG : la Géoplateforme déclare les "
            f"projections en EPSG{hint}. Reprojetez ou corrigez le .prj.",
        )


def _names(ctx: _Context) -> None:
    description, name = ctx.description, ctx.name
    layers: list[dict[str, Any]] = description.details.get("layers") or []
    tables: dict[str, str] = {}
    for layer in layers:
        table = str(layer.get("name") or stem_of(name))
        normalised = _identifier(ctx, table, "table", f"la table « {table} »")
        if normalised:
            if normalised in tables:
                ctx.error(
                    "geoplateforme_name_collision",
                    f"Les tables « {tables[normalised]} » et « {table} » de « {name} » "
                    f"deviendraient toutes deux « {normalised} » sur la Géoplateforme : "
                    "renommez l'une d'elles.",
                )
            tables.setdefault(normalised, table)
        columns: dict[str, str] = {}
        for column_info in layer.get("fields") or []:
            column = str(column_info.get("name") or "")
            normalised = _identifier(ctx, column, "column", f"la colonne « {column} » de « {table} »")
            if not normalised:
                continue
            if normalised in columns:
                ctx.error(
                    "geoplateforme_name_collision",
                    f"Les colonnes « {columns[normalised]} » et « {column} » de « {table} » deviendraient "
                    f"toutes deux « {normalised} » sur la Géoplateforme : renommez l'une d'elles.",
                )
            columns.setdefault(normalised, column)


def _identifier(ctx: _Context, value: str, what: str, label: str) -> str | None:
    if IDENTIFIER.fullmatch(value) and len(value) <= POSTGRES_MAX_IDENTIFIER:
        return value
    normalised = normalise_identifier(value)
    if normalised is None:
        ctx.error(
            f"geoplateforme_{what}_name_invalid",
            f"Le nom de {label} ne peut pas devenir un nom Géoplateforme ([a-z_][a-z0-9_]*) : "
            "renommez-la avec des lettres, chiffres ou « _ ».",
        )
        return None
    ctx.warning(
        f"geoplateforme_{what}_name_normalised",
        f"Le nom de {label} n'est pas de la forme [a-z_][a-z0-9_]* attendue par la Géoplateforme : "
        f"il deviendra « {normalised} ».",
    )
    return normalised


def _csv_geometry(ctx: _Context) -> None:
    geometry = ctx.description.details.get("geometry_columns") or {}
    columns = [str(c) for c in geometry.get("columns") or []]
    folded = [c.strip().lower() for c in columns]
    if geometry.get("kind") == "xy":
        x, y = folded
        if x not in GEOPLATEFORME_CSV_X_NAMES or y not in GEOPLATEFORME_CSV_Y_NAMES:
            ctx.error(
                "geoplateforme_csv_geometry_name",
                f"Les colonnes de coordonnées « {columns[0]} »/« {columns[1]} » de « {ctx.name} » "
                "ne seront pas reconnues par la Géoplateforme : "
                "nommez-les lon/lat, x/y ou longitude/latitude.",
            )
    elif folded and folded[0] not in GEOPLATEFORME_CSV_GEOMETRY_NAMES:
        ctx.error(
            "geoplateforme_csv_geometry_name",
            f"La colonne de géométrie « {columns[0]} » de « {ctx.name} » ne sera pas reconnue par la "
            f"Géoplateforme : nommez-la {', '.join(sorted(GEOPLATEFORME_CSV_GEOMETRY_NAMES))}.",
        )


def _sizes(ctx: _Context) -> None:
    name = ctx.name
    if ctx.size is not None and ctx.size > GEOPLATEFORME_MAX_BYTES:
        ctx.error(
            "geoplateforme_too_large",
            f"« {name} » pèse {human_size(ctx.size)} : au-delà de 2 Go, plafond d'un dépôt "
            "sur cartes.gouv.fr (l'API n'en documente pas ; non confirmé). "
            "Découpez les données en plusieurs fichiers.",
        )
    archive = ctx.description.details.get("archive") or {}
    entries = archive.get("entries") or []
    large = [e["name"] for e in entries if int(e.get("size", 0)) > GEOPLATEFORME_MAX_ZIP_ENTRY_BYTES]
    if large:
        ctx.error(
            "geoplateforme_zip_entry_too_large",
            f"« {name} » contient des fichiers de plus de 1 Go ({', '.join(large[:3])}), plafond par fichier "
            "d'une archive sur cartes.gouv.fr (non confirmé pour l'API).",
        )
    if int(archive.get("entry_count") or 0) > GEOPLATEFORME_MAX_ZIP_FILES:
        ctx.error(
            "geoplateforme_zip_too_many_files",
            f"« {name} » contient {archive['entry_count']} fichiers : cartes.gouv.fr en accepte au plus "
            f"{GEOPLATEFORME_MAX_ZIP_FILES} par archive (non confirmé pour l'API).",
        )


# --------------------------------------------------------------------------------------------- regional


def _regional(ctx: _Context) -> None:
    if ctx.max_bytes is not None and ctx.size is not None and ctx.size > ctx.max_bytes:
        ctx.error(
            "regional_too_large",
            f"« {ctx.name} » pèse {human_size(ctx.size)} : l'entrepôt régional accepte au plus "
            f"{human_size(ctx.max_bytes)} par fichier.",
        )
