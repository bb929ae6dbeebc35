"""Vector data read with GDAL through pyogrio: layers, counts, geometry types, fields, CRS, extents.

Shapefile attribute encoding is decided here, because GDAL alone gets it wrong when the ``.cpg`` is
missing: it falls back to ISO-8859-1 and turns UTF-8 accents into "BÃ©ziers" (peers.md §10,
complaint 9: "DF1 ignores .cpg and garbles text", GeoNode#11519, Layman#660). Order of trust:
``.cpg`` (checked against the bytes), then a decode attempt on the DBF records, then the DBF header's
language driver id. Every guess is reported as a warning the producer can check against the sample.
"""

from __future__ import annotations

import codecs
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.intake.detect import FileDescription
from broker.intake.formats import (
    FORMATS,
    SHAPEFILE_REQUIRED,
    IntakeRefused,
    crs_code,
    extent_warnings,
    jsonable,
    union_extent,
    wgs84_extent,
)

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 3
DBF_SCAN_BYTES = 8 * 1024 * 1024  # enough records to tell UTF-8 from a single-byte code page

# .cpg spellings met in the wild (ArcGIS, QGIS, MapInfo exports) -> a codec GDAL/iconv and Python know.
CPG_ALIASES: dict[str, str] = {
    "UTF-8": "UTF-8",
    "UTF8": "UTF-8",
    "65001": "UTF-8",
    "1252": "CP1252",
    "ANSI1252": "CP1252",
    "CP1252": "CP1252",
    "WINDOWS-1252": "CP1252",
    "ISO-8859-1": "ISO-8859-1",
    "ISO8859-1": "ISO-8859-1",
    "ISO88591": "ISO-8859-1",
    "8859_1": "ISO-8859-1",
    "88591": "ISO-8859-1",
    "LATIN1": "ISO-8859-1",
    "LATIN-1": "ISO-8859-1",
    "ISO-8859-15": "ISO-8859-15",
    "8859_15": "ISO-8859-15",
    "ISO885915": "ISO-8859-15",
    "437": "CP437",
    "850": "CP850",
    "1250": "CP1250",
    "1251": "CP1251",
}
# DBF header byte 29, "language driver id" (ESRI, "Code Page support in shapefiles"); the ones met here.
LDID_CODEPAGES: dict[int, str] = {
    0x01: "CP437",
    0x02: "CP850",
    0x03: "CP1252",
    0x57: "CP1252",
    0x58: "CP1252",
    0x59: "CP1252",
    0x64: "CP852",
    0x65: "CP866",
    0xC8: "CP1250",
    0xC9: "CP1251",
}


# --------------------------------------------------------------------------------------------- encoding


@dataclass
class EncodingChoice:
    encoding: str | None  # handed to GDAL; None keeps GDAL's own choice (pure ASCII needs none)
    label: str  # reported in details["encoding"]
    source: str  # cpg, ldid, guessed, ascii
    warnings: list[str] = field(default_factory=list)


def normalise_codepage(raw: str) -> str | None:
    value = raw.strip().upper().replace(" ", "")
    if value in CPG_ALIASES:
        return CPG_ALIASES[value]
    try:
        return codecs.lookup(value).name.upper()
    except LookupError:
        return None


def dbf_records(dbf: Path, limit: int = DBF_SCAN_BYTES) -> tuple[int, bytes]:
    """(language driver id, bytes of the first records cut at a record boundary)."""
    with dbf.open("rb") as handle:
        header = handle.read(32)
        if len(header) < 32:
            return 0, b""
        header_length = int.from_bytes(header[8:10], "little")
        record_length = max(int.from_bytes(header[10:12], "little"), 1)
        handle.seek(header_length)
        data = handle.read(max(limit // record_length, 1) * record_length)
    return header[29], data


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _single_byte_guess(data: bytes) -> str:
    # Bytes 0x80-0x9F are C1 controls in ISO-8859-1 but letters and signs (€, œ, ’) in CP1252; without
    # them the two decode the same, and ISO-8859-1 is the honest name.
    if any(0x80 <= b <= 0x9F for b in data) and _decodes(data, "cp1252"):
        return "CP1252"
    return "ISO-8859-1"


def _nickname(codec: str) -> str:
    return "« ANSI » Windows" if codec == "CP1252" else "« latin-1 »"


def shapefile_encoding(dbf: Path, cpg: Path | None, label: str) -> EncodingChoice:
    ldid, data = dbf_records(dbf)
    ascii_only = data.isascii()
    notes: list[str] = []
    if cpg is not None:
        declared_raw = cpg.read_bytes()[:64].decode("ascii", errors="replace").strip()
        declared = normalise_codepage(declared_raw)
        if declared is None:
            notes.append(
                f"Le fichier .cpg de « {label} » annonce un encodage inconnu (« {declared_raw} ») : "
                "encodage deviné d'après le contenu."
            )
        elif ascii_only or _decodes(data, declared):
            return EncodingChoice(declared, declared, "cpg")
        else:
            guess = _single_byte_guess(data)
            return EncodingChoice(
                guess,
                guess,
                "guessed",
                [
                    f"Le fichier .cpg de « {label} » annonce {declared} mais les attributs ne sont "
                    f"pas lisibles ainsi : lus en {guess}. "
                    "Vérifiez les accents dans l'aperçu et corrigez le .cpg."
                ],
            )
    if ascii_only:
        return EncodingChoice(None, "ASCII", "ascii", notes)
    if _decodes(data, "utf-8"):
        notes.append(
            f"Encodage des attributs de « {label} » deviné : UTF-8 (pas de fichier .cpg). "
            "Ajoutez un .cpg contenant « UTF-8 » pour lever le doute."
        )
        return EncodingChoice("UTF-8", "UTF-8", "guessed", notes)
    declared_ldid = LDID_CODEPAGES.get(ldid)
    if declared_ldid and _decodes(data, declared_ldid):
        return EncodingChoice(declared_ldid, declared_ldid, "ldid", notes)
    guess = _single_byte_guess(data)
    notes.append(
        f"Encodage des attributs de « {label} » deviné : {guess} ({_nickname(guess)}), faute de fichier "
        f".cpg. Vérifiez les accents dans l'aperçu et ajoutez un .cpg contenant « {guess} »."
    )
    return EncodingChoice(guess, guess, "guessed", notes)


# --------------------------------------------------------------------------------------------- shapefile


def check_shapefile_parts(name: str, label: str, parts: dict[str, Path | None]) -> list[str]:
    """Refuse a shapefile without .shx or .dbf; return the warning for a missing .prj."""
    missing = [f".{ext}" for ext in SHAPEFILE_REQUIRED if parts.get(ext) is None]
    if missing:
        raise IntakeRefused(
            name,
            f"Le Shapefile « {label} » est incomplet : il manque {' et '.join(missing)} "
            "(un Shapefile se compose au moins des fichiers .shp, .shx et .dbf de même nom).",
            "shapefile_incomplete",
        )
    if parts.get("prj") is None:
        return [
            f"Le Shapefile « {label} » n'a pas de fichier .prj : sa projection est inconnue. "
            "Ajoutez le .prj exporté par votre SIG."
        ]
    return []


def check_shapefile_structure(name: str, label: str, parts: dict[str, Path | None]) -> None:
    """Refuse a truncated or inconsistent shapefile. GDAL only logs "Corrupted .shp file" and hands back
    an empty geometry, so the sizes the headers declare are checked against the files (ESRI white paper:
    100-byte headers, lengths in 16-bit words; .shx holds 8 bytes per record; dBase header + records)."""
    shp, shx, dbf = parts.get("shp"), parts.get("shx"), parts.get("dbf")
    if shp is None or shx is None or dbf is None:
        return
    problems: list[str] = []
    shp_size, shx_size, dbf_size = shp.stat().st_size, shx.stat().st_size, dbf.stat().st_size
    with shp.open("rb") as handle:
        shp_header = handle.read(100)
    with shx.open("rb") as handle:
        shx_header = handle.read(100)
        records = max((shx_size - 100) // 8, 0)
        last_index = b""
        if records:
            handle.seek(100 + (records - 1) * 8)
            last_index = handle.read(8)
    with dbf.open("rb") as handle:
        dbf_header = handle.read(32)
    if len(shp_header) < 100 or int.from_bytes(shp_header[24:28], "big") * 2 != shp_size:
        problems.append(".shp tronqué ou de taille incohérente")
    if len(shx_header) < 100 or int.from_bytes(shx_header[24:28], "big") * 2 != shx_size:
        problems.append(".shx tronqué ou de taille incohérente")
    if len(last_index) == 8:
        offset, length = int.from_bytes(last_index[:4], "big") * 2, int.from_bytes(last_index[4:], "big") * 2
        if offset + 8 + length > shp_size:
            problems.append("le dernier objet dépasse la fin du .shp")
    if len(dbf_header) == 32:
        dbf_records = int.from_bytes(dbf_header[4:8], "little")
        needed = int.from_bytes(dbf_header[8:10], "little") + dbf_records * int.from_bytes(
            dbf_header[10:12], "little"
        )
        if needed > dbf_size:
            problems.append(".dbf tronqué")
        if dbf_records != records:
            problems.append(f"{records} géométries pour {dbf_records} lignes d'attributs")
    if problems:
        raise IntakeRefused(
            name,
            f"Le Shapefile « {label} » est corrompu : {' ; '.join(problems)}. Exportez-le à nouveau.",
            "shapefile_corrupt",
        )


# --------------------------------------------------------------------------------------------- layers


def _unreadable(name: str, exc: BaseException) -> IntakeRefused:
    logger.info("vector source %s unreadable: %s", name, exc)
    return IntakeRefused(name, f"« {name} » est illisible par GDAL : {exc}", "unreadable")


def read_layers(
    source: Path,
    name: str,
    *,
    encoding: str | None = None,
    open_options: dict[str, str] | None = None,
    display_name: str | None = None,
) -> list[dict[str, Any]]:
    """Describe every layer of ``source``. ``display_name`` replaces the layer name of single-layer
    formats, whose GDAL name is the (content-addressed, meaningless) file name."""
    import pyogrio
    from pyogrio import raw

    options = open_options or {}
    layers: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL chatter, e.g. "non conformant extension"
        try:
            listed = pyogrio.list_layers(source)
        except Exception as exc:  # pyogrio raises its own DataSourceError and plain RuntimeErrors
            raise _unreadable(name, exc) from exc
        if len(listed) == 0:
            raise IntakeRefused(name, f"« {name} » ne contient aucune couche lisible.", "unreadable")
        for layer_name, _ in listed:
            try:
                info = pyogrio.read_info(
                    source,
                    layer=layer_name,
                    encoding=encoding,
                    force_feature_count=True,
                    force_total_bounds=True,
                    **options,
                )
                count = int(info["features"])
                _, _, _, sample_values = raw.read(
                    source,
                    layer=layer_name,
                    encoding=encoding,
                    read_geometry=False,
                    max_features=SAMPLE_ROWS,
                    **options,
                )
                if count > 0:
                    # The last feature, geometry included: a truncated file fails here and not later.
                    raw.read(
                        source,
                        layer=layer_name,
                        encoding=encoding,
                        skip_features=count - 1,
                        max_features=1,
                        **options,
                    )
            except Exception as exc:
                raise _unreadable(name, exc) from exc
            layers.append(
                _layer(info, str(layer_name), display_name if len(listed) == 1 else None, sample_values)
            )
    return layers


def _layer(
    info: dict[str, Any], layer_name: str, display_name: str | None, values: list[Any]
) -> dict[str, Any]:
    fields = [str(f) for f in info["fields"]]
    types = [str(t).removeprefix("OFT") for t in info.get("ogr_types") or []]
    crs_value = info.get("crs")
    geometry_type = info.get("geometry_type")
    bounds = info.get("total_bounds")
    native = [float(v) for v in bounds] if bounds is not None else None
    if native is not None and not all(math.isfinite(v) for v in native):
        native = None  # empty layers report NaN bounds
    extent = wgs84_extent(native, crs_value) if geometry_type and crs_value else None
    sample = [
        {fields[i]: jsonable(values[i][row]) for i in range(len(fields))}
        for row in range(min((len(values[0]) if values else 0), SAMPLE_ROWS))
    ]
    return {
        "name": display_name or layer_name,
        "geometry_type": geometry_type,
        "features": int(info["features"]),
        "fields": [{"name": f, "type": types[i] if i < len(types) else None} for i, f in enumerate(fields)],
        "crs": crs_code(crs_value) if crs_value else None,
        "crs_wkt": None if crs_code(crs_value) else (str(crs_value) if crs_value else None),
        "extent": [round(v, 9) for v in native] if native else None,
        "extent_wgs84": extent,
        "geometry_column": info.get("geometry_name") or None,
        "encoding": info.get("encoding"),
        "sample": sample,
        "_native": native,
        "_crs_value": crs_value,
    }


def describe_layers(
    fmt: str,
    layers: list[dict[str, Any]],
    *,
    media_type: str | None = None,
    warnings_: list[str] | None = None,
    details: dict[str, Any] | None = None,
    missing_crs_hint: str = "",
) -> FileDescription:
    """Fold per-layer facts into one FileDescription (crs and extent of the whole file)."""
    notes = list(warnings_ or [])
    spatial = [layer for layer in layers if layer["geometry_type"]]
    codes = []
    for layer in spatial:
        if layer["_crs_value"] is None:
            notes.append(
                f"La couche « {layer['name']} » n'a pas de système de coordonnées{missing_crs_hint}."
            )
        elif layer["crs"] is None:
            notes.append(
                f"La projection de la couche « {layer['name']} » n'a pas de code EPSG reconnu : "
                "elle sera difficile à publier telle quelle."
            )
        else:
            notes.extend(extent_warnings(layer["_native"], layer["_crs_value"], layer["extent_wgs84"]))
        if layer["features"] == 0:
            notes.append(f"La couche « {layer['name']} » est vide.")
        codes.append(layer["crs"])
    distinct = sorted({c for c in codes if c})
    if len(distinct) > 1:
        notes.append(f"Les couches sont dans des projections différentes ({', '.join(distinct)}).")
    for layer in layers:
        layer.pop("_native", None)
        layer.pop("_crs_value", None)
    info = FORMATS[fmt]
    all_details: dict[str, Any] = dict(details or {})
    all_details["layers"] = layers
    all_details["feature_count"] = sum(layer["features"] for layer in layers)
    return FileDescription(
        format=fmt,
        kind=info.kind,
        media_type=media_type or info.media_type,
        crs=distinct[0] if len(distinct) == 1 else (codes[0] if codes else None),
        extent_wgs84=union_extent([layer["extent_wgs84"] for layer in spatial if layer["extent_wgs84"]]),
        details=all_details,
        warnings=notes,
    )


def describe_shapefiles(
    shapefiles: list[tuple[str, dict[str, Path | None]]], name: str, *, media_type: str | None = None
) -> FileDescription:
    """One or several shapefiles (label, parts by extension) as one vector description."""
    layers: list[dict[str, Any]] = []
    notes: list[str] = []
    encodings: list[str] = []
    for label, parts in shapefiles:
        notes.extend(check_shapefile_parts(name, label, parts))
        check_shapefile_structure(name, label, parts)
        dbf, shp = parts["dbf"], parts["shp"]
        assert dbf is not None and shp is not None
        choice = shapefile_encoding(dbf, parts.get("cpg"), label)
        notes.extend(choice.warnings)
        for layer in read_layers(
            shp, name, encoding=choice.encoding, display_name=label.rsplit("/", 1)[-1][:-4]
        ):
            layer["encoding"] = choice.label
            layer["encoding_source"] = choice.source
            layers.append(layer)
        encodings.append(choice.label)
    details: dict[str, Any] = {"driver": "ESRI Shapefile", "encoding": encodings[0] if encodings else None}
    if len(set(encodings)) > 1:
        details["encodings"] = encodings
    return describe_layers(
        "shp",
        layers,
        media_type=media_type,
        warnings_=notes,
        details=details,
        missing_crs_hint=" (.prj absent)",
    )
