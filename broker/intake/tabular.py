"""Text tables and JSON: encoding, delimiter, header, rows, coordinate or geometry columns; well-formed JSON.

CSV has no declared encoding, so it is told from the bytes: a BOM, else strict UTF-8 over the whole file,
else a single-byte Windows/ISO code page, reported as a guess (peers.md §10, complaint 9: garbled accents).
JSON must be UTF-8 (RFC 8259 §8.1) and well-formed; GeoJSON is recognised by its ``type`` member
(RFC 7946 §1.4) and a legacy ``crs`` member (GeoJSON 2008 §3, removed by RFC 7946 §4) is reported.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import logging
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.intake.detect import FileDescription
from broker.intake.formats import FORMATS, IntakeRefused, stem_of, wgs84_extent

logger = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
CHUNK = 1024 * 1024
JSON_PARSE_MAX_BYTES = 100 * 1024 * 1024  # json.loads costs ~10x the file in memory; GDAL streams beyond
EXAMPLES = 5
GEOJSON_TYPES = frozenset(
    {
        "FeatureCollection",
        "Feature",
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)
WGS84_NAMES = ("crs84", "epsg::4326", "epsg:4326", "4326")

# Column names read as coordinates or geometries. Wider than what the Géoplateforme accepts
# (formats.GEOPLATEFORME_CSV_*): preflight tells the producer which ones to rename.
X_NAMES = ("lon", "longitude", "lng", "long", "x")
Y_NAMES = ("lat", "latitude", "y")
GEOMETRY_NAMES = ("wkt", "geom", "the_geom", "geometry", "wkb", "json", "geojson", "geo_shape")
WKT_VALUE = re.compile(
    r"^\s*(SRID=(\d+);)?\s*(MULTI)?(POINT|LINESTRING|POLYGON|GEOMETRYCOLLECTION|CURVEPOLYGON|MULTICURVE)\b",
    re.IGNORECASE,
)
WKB_HEX_VALUE = re.compile(r"^(00|01)[0-9A-Fa-f]{16,}$")
GEOJSON_VALUE = re.compile(r'^\s*\{\s*"(type|coordinates)"\s*:')
NUMBER_PAIR = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s+(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


# --------------------------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class TextEncoding:
    codec: str  # for Python's open()
    label: str  # reported: utf-8, utf-8-sig, utf-16, cp1252, latin-1
    guessed: bool


def _chunks(path: Path, start: int = 0) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        while chunk := handle.read(CHUNK):
            yield chunk


def is_utf8(path: Path, start: int = 0) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in _chunks(path, start):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def detect_text_encoding(path: Path) -> TextEncoding:
    with path.open("rb") as handle:
        bom = handle.read(4)
    if bom.startswith(codecs.BOM_UTF8):
        return TextEncoding("utf-8-sig", "utf-8-sig", False)
    if bom.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return TextEncoding("utf-16", "utf-16", False)
    if is_utf8(path):
        return TextEncoding("utf-8", "utf-8", False)
    # Bytes 0x80-0x9F are letters (€, œ, ’) in CP1252 and control codes in ISO-8859-1.
    c1 = any(any(0x80 <= b <= 0x9F for b in chunk) for chunk in _chunks(path))
    if c1:
        return TextEncoding("cp1252", "cp1252", True)
    return TextEncoding("latin-1", "latin-1", True)


def sample_text(path: Path, encoding: TextEncoding) -> str:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    return head.decode(encoding.codec, errors="ignore")


def is_text(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for b in head if b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1A, 0x1E))
    return controls <= len(head) // 100


def text_family(head: bytes) -> str:
    """json, html, xml or text, from the first significant characters."""
    text = head.decode(
        "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "latin-1", errors="ignore"
    )
    stripped = text.lstrip("\ufeff\xef\xbb\xbf\x1e \t\r\n").lower()
    if stripped.startswith(("{", "[")):
        return "json"
    if stripped.startswith(("<!doctype html", "<html")):
        return "html"
    if stripped.startswith("<"):
        return "html" if "<html" in stripped[:1024] else "xml"
    return "text"


# --------------------------------------------------------------------------------------------- CSV


def _fold(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.strip().strip('"').lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _sniff_delimiter(sample: str) -> str | None:
    lines = [line for line in sample.splitlines() if line.strip()][:50]
    if not lines:
        return None
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in ",;\t|"}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] > 0 else None


def _tabular(sample: str, delimiter: str) -> bool:
    """Prose with commas is not a table: at least two columns, and most lines as wide as the header."""
    lines = [line for line in sample.splitlines() if line.strip()][:50]
    rows = list(csv.reader(lines, delimiter=delimiter))
    if not rows or len(rows[0]) < 2:
        return False
    if len(rows) > 1:
        rows = rows[:-1]  # the sample may cut the last line
    return sum(1 for r in rows if len(r) == len(rows[0])) >= 0.8 * len(rows)


def _number(value: str, decimal_comma: bool) -> float | None:
    text = value.strip()
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def _geometry_columns(header: list[str], rows: list[list[str]]) -> dict[str, Any] | None:
    folded = [_fold(h) for h in header]
    x = next((header[folded.index(n)] for n in X_NAMES if n in folded), None)
    y = next((header[folded.index(n)] for n in Y_NAMES if n in folded), None)
    if x and y:
        return {"kind": "xy", "columns": [x, y]}
    candidates = [i for i, f in enumerate(folded) if f in GEOMETRY_NAMES] + list(range(len(header)))
    for index in dict.fromkeys(candidates):
        value = next((r[index] for r in rows if index < len(r) and r[index].strip()), "")
        if WKT_VALUE.match(value):
            return {"kind": "wkt", "columns": [header[index]]}
        if GEOJSON_VALUE.match(value):
            return {"kind": "geojson", "columns": [header[index]]}
        if WKB_HEX_VALUE.match(value.strip()):
            return {"kind": "wkb", "columns": [header[index]]}
    return None


class _Bounds:
    def __init__(self) -> None:
        self.box: list[float] | None = None
        self.invalid = 0

    def add(self, x: float | None, y: float | None) -> None:
        if x is None or y is None:
            self.invalid += 1
            return
        if self.box is None:
            self.box = [x, y, x, y]
        else:
            box = self.box
            box[0], box[1], box[2], box[3] = min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)


def _guess_crs(box: list[float]) -> str | None:
    if box[0] >= -180 and box[2] <= 180 and box[1] >= -90 and box[3] <= 90:
        return "EPSG:4326"
    # Lambert-93 covers metropolitan France with x in [~100 km, ~1 250 km] and y in [~6 000, ~7 150 km].
    if box[0] >= 0 and box[2] <= 1_300_000 and box[1] >= 6_000_000 and box[3] <= 7_200_000:
        return "EPSG:2154"
    return None


def describe_csv(path: Path, name: str, *, strict: bool) -> FileDescription | None:
    """A CSV description, or None when ``strict`` is false and the text has no delimiter (plain text)."""
    encoding = detect_text_encoding(path)
    sample = sample_text(path, encoding)
    delimiter = _sniff_delimiter(sample)
    if not strict and (delimiter is None or not _tabular(sample, delimiter)):
        return None
    delimiter = delimiter or ","
    notes: list[str] = []
    if encoding.guessed:
        notes.append(
            f"Encodage de « {name} » deviné : {encoding.label} (ce n'est pas de l'UTF-8). "
            "Vérifiez les accents ; l'UTF-8 est recommandé."
        )
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # WKT geometries exceed the 128 KiB default
    ragged: list[int] = []
    rows_seen = 0
    bounds = _Bounds()
    try:
        with path.open("r", encoding=encoding.codec, errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise IntakeRefused(name, f"« {name} » ne contient aucune ligne.", "unreadable")
            width = len(header)
            rows = (row for row in reader if row)
            head_rows = list(itertools.islice(rows, 20))
            geometry = _geometry_columns(header, head_rows)
            for row in itertools.chain(head_rows, rows):
                rows_seen = _row(row, width, rows_seen, ragged, geometry, header, bounds, delimiter)
    except csv.Error as exc:
        raise IntakeRefused(name, f"« {name} » n'est pas un CSV lisible : {exc}.", "unreadable") from exc

    details: dict[str, Any] = {
        "encoding": encoding.label,
        "encoding_guessed": encoding.guessed,
        "delimiter": delimiter,
        "header": header,
        "columns": len(header),
        "row_count": rows_seen,
        "layers": [{"name": stem_of(name), "fields": [{"name": h, "type": None} for h in header]}],
    }
    if ragged:
        details["ragged_rows"] = len(ragged)
        notes.append(
            f"{len(ragged)} ligne(s) de « {name} » n'ont pas {width} colonnes comme l'en-tête "
            f"(lignes {', '.join(str(n) for n in ragged[:EXAMPLES])}…)."
        )
    if rows_seen == 0:
        notes.append(f"« {name} » ne contient que son en-tête.")
    if header and all(_number(h, True) is not None for h in header if h.strip()):
        notes.append(f"La première ligne de « {name} » ressemble à des données : l'en-tête manque-t-il ?")
    if any(not h.strip() for h in header):
        notes.append(f"« {name} » a des colonnes sans nom.")
    folded = [_fold(h) for h in header]
    duplicates = sorted({h for h, f in zip(header, folded, strict=True) if folded.count(f) > 1})
    if duplicates:
        notes.append(f"« {name} » a des colonnes en double : {', '.join(duplicates)}.")

    crs: str | None = None
    extent: list[float] | None = None
    if geometry:
        details["geometry_columns"] = geometry
        if geometry["kind"] == "xy" and delimiter != ",":
            column = header.index(geometry["columns"][0])
            if any(column < len(r) and "," in r[column] for r in head_rows):
                details["decimal_separator"] = ","
        if bounds.box is not None:
            details["extent"] = [round(v, 9) for v in bounds.box]
            crs = _guess_crs(bounds.box)
            if crs:
                extent = wgs84_extent(bounds.box, crs)
                notes.append(
                    f"Projection de « {name} » supposée {crs} d'après l'étendue des coordonnées : "
                    "un CSV ne la déclare pas."
                )
            else:
                notes.append(
                    f"Projection de « {name} » inconnue : les coordonnées ne ressemblent "
                    "ni à du WGS84 ni à du Lambert-93."
                )
        if bounds.invalid:
            notes.append(f"{bounds.invalid} ligne(s) de « {name} » ont des coordonnées vides ou illisibles.")
    return FileDescription(
        format="csv",
        kind="table",
        media_type=FORMATS["csv"].media_type,
        crs=crs,
        extent_wgs84=extent,
        details=details,
        warnings=notes,
    )


def _row(
    row: list[str],
    width: int,
    seen: int,
    ragged: list[int],
    geometry: dict[str, Any] | None,
    header: list[str],
    bounds: _Bounds,
    delimiter: str,
) -> int:
    seen += 1
    if len(row) != width and len(ragged) < 10_000:
        ragged.append(seen + 1)  # 1-based line number, header being line 1 (quoted newlines aside)
    if geometry is None:
        return seen
    if geometry["kind"] == "xy":
        xi, yi = header.index(geometry["columns"][0]), header.index(geometry["columns"][1])
        decimal_comma = delimiter != ","
        x = _number(row[xi], decimal_comma) if xi < len(row) else None
        y = _number(row[yi], decimal_comma) if yi < len(row) else None
        bounds.add(x, y)
    elif geometry["kind"] == "wkt":
        index = header.index(geometry["columns"][0])
        value = row[index] if index < len(row) else ""
        match = WKT_VALUE.match(value)
        if match is None:
            bounds.add(None, None)
        elif not re.search(r"\b[ZM]{1,2}\s*\(", value, re.IGNORECASE):
            for xs, ys in NUMBER_PAIR.findall(value[match.end() :]):
                bounds.add(float(xs), float(ys))
    return seen


def describe_text(path: Path, name: str) -> FileDescription:
    encoding = detect_text_encoding(path)
    notes = [f"Encodage de « {name} » deviné : {encoding.label}."] if encoding.guessed else []
    return FileDescription(
        format="txt",
        kind="document",
        media_type="text/plain",
        details={"encoding": encoding.label},
        warnings=notes,
    )


# --------------------------------------------------------------------------------------------- JSON


@dataclass
class JsonProbe:
    geojson: bool
    value: Any = None  # the parsed document, when small enough to parse
    legacy_crs: str | None = None
    lines: int | None = None  # JSON Lines / GeoJSON text sequences (RFC 8142): one value per line
    warnings: list[str] | None = None


def _position(text: str, exc: json.JSONDecodeError) -> str:
    return f"ligne {exc.lineno}, colonne {exc.colno} ({exc.msg})"


def probe_json(path: Path, name: str, size: int) -> JsonProbe:
    """Parse (or, beyond the memory cap, sniff) a JSON document. Refuses non-UTF-8 and broken JSON."""
    notes: list[str] = []
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        notes.append(f"« {name} » commence par une marque d'ordre (BOM) : la RFC 8259 §8.1 l'interdit.")
    if not is_utf8(path):
        raise IntakeRefused(
            name,
            f"« {name} » n'est pas encodé en UTF-8, comme l'exige la RFC 8259 (§8.1) : "
            "réenregistrez-le en UTF-8.",
            "json_not_utf8",
        )
    if size > JSON_PARSE_MAX_BYTES:
        text = head.decode("utf-8", errors="ignore")
        match = re.search(r'"type"\s*:\s*"([A-Za-z]+)"', text)
        is_geo = bool(match and match.group(1) in GEOJSON_TYPES)
        crs_match = re.search(r'"crs"\s*:\s*\{[^}]*"name"\s*:\s*"([^"]+)"', text)
        notes.append(f"« {name} » est trop volumineux pour une vérification JSON complète ; GDAL le lira.")
        return JsonProbe(is_geo, legacy_crs=crs_match.group(1) if crs_match else None, warnings=notes)
    text = path.read_bytes().decode("utf-8-sig")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = _json_lines(text)
        if lines is not None:
            return JsonProbe(False, lines=lines, warnings=notes)
        raise IntakeRefused(
            name, f"« {name} » n'est pas un JSON valide : {_position(text, exc)}.", "json_malformed"
        ) from exc
    is_geo = isinstance(value, dict) and value.get("type") in GEOJSON_TYPES
    return JsonProbe(is_geo, value=value, legacy_crs=_legacy_crs(value) if is_geo else None, warnings=notes)


def _json_lines(text: str) -> int | None:
    count = 0
    for line in text.splitlines():
        line = line.strip().lstrip("\x1e")
        if not line:
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError:
            return None
        count += 1
    return count if count > 1 else None


def _legacy_crs(value: dict[str, Any]) -> str | None:
    crs = value.get("crs")
    if not isinstance(crs, dict):
        return None
    properties = crs.get("properties")
    if isinstance(properties, dict):
        for key in ("name", "href"):
            if isinstance(properties.get(key), str):
                return str(properties[key])
    return json.dumps(crs)[:200]


def legacy_crs_warning(name: str, declared: str, crs: str | None) -> str | None:
    """RFC 7946 §4 removed the ``crs`` member: GeoJSON is WGS84 lon/lat. Accepted, but said."""
    if any(w in declared.lower() for w in WGS84_NAMES) and crs in (None, "EPSG:4326", "OGC:CRS84"):
        return None
    return (
        f"« {name} » déclare sa projection ({crs or declared}) dans un membre « crs » : la RFC 7946 l'a "
        "supprimé et impose WGS84 (longitude, latitude). Accepté et décrit dans sa projection, mais "
        "beaucoup d'outils l'ignoreront : exportez-le plutôt en WGS84 (EPSG:4326)."
    )


def describe_json(path: Path, name: str, probe: JsonProbe) -> FileDescription:
    details: dict[str, Any] = {}
    value = probe.value
    if probe.lines is not None:
        details["json_lines"] = probe.lines
    elif isinstance(value, list):
        details["top_level"] = "array"
        details["items"] = len(value)
    elif isinstance(value, dict):
        details["top_level"] = "object"
        details["keys"] = list(value)[:50]
    elif value is not None:
        details["top_level"] = type(value).__name__
    return FileDescription(
        format="json",
        kind="table",
        media_type=FORMATS["json"].media_type,
        details=details,
        warnings=list(probe.warnings or []),
    )
