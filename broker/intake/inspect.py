"""Tell what a received file really is, by its content, and describe it with the field's own libraries.

Entry point of intake inspection::

    from broker.intake.inspect import ArchiveLimits, IntakeRefused, inspect_file

    description = inspect_file(staged.path, staged.name)          # FileDescription, or IntakeRefused (422)

The name only states a claim; the bytes decide (magic numbers, then internal structure). A file whose
content contradicts its extension is refused, as are unreadable files, unsafe archives, incomplete
shapefiles, broken GTFS feeds and malformed JSON (DESIGN.md §4: "bad input gets a clear error";
peers.md §10, complaints 6 and 9). Nothing is written outside temporary directories, which are
always removed.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from broker.intake import gtfs, raster, tabular, vector
from broker.intake.archives import (
    ArchiveLimits,
    ArchiveListing,
    ExtractionBudget,
    check_archive,
    extract_member,
    is_junk,
    member_name,
    open_zip,
)
from broker.intake.detect import FileDescription
from broker.intake.formats import (
    CONTENT_LABELS,
    EXPECTED_CONTENT,
    EXTENSION_LABELS,
    FORMATS,
    SHAPEFILE_PARTS,
    WORLD_FILE_PARTS,
    IntakeRefused,
    extension_of,
    looks_like_dbf,
    read_head,
    sniff_binary,
    stem_of,
)

logger = logging.getLogger(__name__)

__all__ = ["ArchiveLimits", "FileDescription", "IntakeRefused", "inspect_file"]

OFFICE_EXTENSIONS = frozenset({"docx", "xlsx", "pptx", "odt", "ods", "odp", "odg"})
OTHER_ARCHIVES = frozenset({"gzip", "bzip2", "xz", "7z", "rar"})
XML_VECTOR_EXTENSIONS = frozenset({"kml", "gml", "gpx"})


def inspect_file(
    path: Path,
    name: str,
    *,
    limits: ArchiveLimits | None = None,
    siblings: Mapping[str, Path] | None = None,
) -> FileDescription:
    """Describe the file at ``path`` received as ``name``; raise :class:`IntakeRefused` if it is unfit.

    ``siblings`` maps the other received file names to their paths, so that a bare ``.shp`` finds its
    ``.shx``/``.dbf``/``.prj``/``.cpg`` and a TIFF its world file. Without it, they are looked for next
    to ``path`` when ``path`` bears the file's own name.
    """
    limits = limits or ArchiveLimits()
    try:
        size = path.stat().st_size
        head = read_head(path)
    except OSError as exc:
        raise IntakeRefused(name, f"« {name} » est illisible ({exc.strerror or exc}).", "unreadable") from exc
    if size == 0:
        raise IntakeRefused(name, f"« {name} » est vide.", "empty_file")
    ext = extension_of(name)
    content = _content(path, head, ext)
    _check_claim(name, ext, content)
    description = _describe(path, name, ext, content, head, size, limits, siblings)
    description.details.setdefault("size", size)
    description.details.setdefault("content", content)
    logger.debug("inspected %s: %s/%s", name, description.format, description.kind)
    return description


# --------------------------------------------------------------------------------------------- content


def _content(path: Path, head: bytes, ext: str) -> str:
    family = sniff_binary(head)
    if family == "sqlite":
        return "gpkg" if _has_gpkg_contents(path) else "sqlite"
    if family:
        return family
    if ext == "dbf" and looks_like_dbf(head):
        return "dbf"
    if tabular.is_text(head):
        return tabular.text_family(head)
    return "binary"


def _has_gpkg_contents(path: Path) -> bool:
    """OGC 12-128r18 requirement 13: every GeoPackage has a ``gpkg_contents`` table. Opened read-only
    and immutable so SQLite writes no journal next to the stored file."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = 'gpkg_contents'"
        ).fetchone()
    except sqlite3.Error:
        return False
    finally:
        connection.close()
    return row is not None


def _check_claim(name: str, ext: str, content: str, *, parsed: bool = False) -> None:
    expected = EXPECTED_CONTENT.get(ext)
    if expected is None or content in expected:
        return
    if content == "json" and not parsed and expected & {"json", "geojson"}:
        return  # JSON and GeoJSON are told apart once parsed
    claimed = EXTENSION_LABELS.get(ext, f"un fichier .{ext}")
    if content == "binary":
        reason = f"« {name} » n'est pas {claimed} : son contenu n'est pas reconnu."
    else:
        reason = f"« {name} » est en réalité {CONTENT_LABELS.get(content, content)}, pas {claimed}."
    logger.info("intake refused %s: extension .%s, content %s", name, ext, content)
    raise IntakeRefused(name, reason, "type_mismatch")


# --------------------------------------------------------------------------------------------- dispatch


def _describe(
    path: Path,
    name: str,
    ext: str,
    content: str,
    head: bytes,
    size: int,
    limits: ArchiveLimits,
    siblings: Mapping[str, Path] | None,
) -> FileDescription:
    if content == "pdf":
        return _describe_pdf(path, name, head, size)
    if content == "png":
        return _describe_png(path, name, head, size)
    if content in ("jpeg", "gif"):
        fmt = "jpg" if content == "jpeg" else "gif"
        return FileDescription(format=fmt, kind="image", media_type=FORMATS[fmt].media_type)
    if content == "zip":
        return _describe_zip(path, name, ext, size, limits)
    if content == "gpkg":
        return _describe_gpkg(path, name)
    if content == "fgb":
        layers = vector.read_layers(path, name, display_name=stem_of(name))
        return vector.describe_layers("fgb", layers, details={"driver": "FlatGeobuf"})
    if content == "sqlite":
        return FileDescription(format="sqlite", kind="other", media_type="application/vnd.sqlite3")
    if content in ("tiff", "jp2"):
        return _describe_raster(path, name, ext, content, siblings)
    if content == "shp":
        if ext == "shx":
            return _sidecar(name, ext)
        return _describe_lone_shapefile(path, name, siblings)
    if content == "dbf":
        return _sidecar(name, ext)
    if content == "json":
        return _describe_json(path, name, ext, size)
    if content == "text":
        return _describe_text(path, name, ext)
    if content == "html":
        return FileDescription(format="html", kind="document", media_type="text/html")
    if content == "xml":
        if ext in XML_VECTOR_EXTENSIONS:
            return FileDescription(format=ext, kind="vector", media_type=mimetypes.guess_type(name)[0])
        return FileDescription(format=ext or "xml", kind="document", media_type="application/xml")
    if content in OTHER_ARCHIVES:
        return FileDescription(
            format=ext or content,
            kind="archive",
            media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
            warnings=[f"« {name} » est {CONTENT_LABELS[content]} : seules les archives ZIP sont vérifiées."],
        )
    return FileDescription(format=ext or None, kind="other", media_type=mimetypes.guess_type(name)[0])


def _sidecar(name: str, ext: str) -> FileDescription:
    return FileDescription(
        format=ext,
        kind="other",
        media_type="application/octet-stream",
        details={"role": "shapefile_component" if ext in SHAPEFILE_PARTS else "sidecar"},
    )


def _describe_pdf(path: Path, name: str, head: bytes, size: int) -> FileDescription:
    version = head[5:8].decode("ascii", errors="replace")
    with path.open("rb") as handle:
        handle.seek(max(size - 2048, 0))
        tail = handle.read()
    notes = [] if b"%%EOF" in tail else [f"« {name} » semble tronqué (pas de marque de fin %%EOF)."]
    return FileDescription(
        format="pdf",
        kind="document",
        media_type=FORMATS["pdf"].media_type,
        details={"pdf_version": version},
        warnings=notes,
    )


def _describe_png(path: Path, name: str, head: bytes, size: int) -> FileDescription:
    # PNG (ISO/IEC 15948) §5.3/§11.2.2: the first chunk is IHDR, 13 bytes, width and height big endian.
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise IntakeRefused(
            name, f"« {name} » est une image PNG corrompue (en-tête IHDR absent).", "unreadable"
        )
    with path.open("rb") as handle:
        handle.seek(max(size - 12, 0))
        tail = handle.read()
    notes = [] if b"IEND" in tail else [f"« {name} » semble tronqué (pas de bloc IEND final)."]
    return FileDescription(
        format="png",
        kind="image",
        media_type=FORMATS["png"].media_type,
        details={
            "width": int.from_bytes(head[16:20], "big"),
            "height": int.from_bytes(head[20:24], "big"),
            "bit_depth": head[24],
            "color_type": head[25],
        },
        warnings=notes,
    )


def _describe_gpkg(path: Path, name: str, *, media_type: str | None = None) -> FileDescription:
    # IMMUTABLE=YES: read-only and no -wal/-shm files next to the stored blob (GDAL GPKG open options).
    layers = vector.read_layers(path, name, open_options={"IMMUTABLE": "YES"})
    return vector.describe_layers("gpkg", layers, media_type=media_type, details={"driver": "GPKG"})


def _describe_json(path: Path, name: str, ext: str, size: int) -> FileDescription:
    probe = tabular.probe_json(path, name, size)
    if not probe.geojson:
        _check_claim(name, ext, "json", parsed=True)
        return tabular.describe_json(path, name, probe)
    layers = vector.read_layers(path, name, display_name=stem_of(name))
    description = vector.describe_layers(
        "geojson", layers, warnings_=list(probe.warnings or []), details={"driver": "GeoJSON"}
    )
    if probe.legacy_crs:
        description.details["legacy_crs"] = probe.legacy_crs
        warning = tabular.legacy_crs_warning(name, probe.legacy_crs, description.crs)
        if warning:
            description.warnings.insert(0, warning)
    return description


def _describe_text(path: Path, name: str, ext: str) -> FileDescription:
    if ext in ("prj", "cpg"):
        return _sidecar(name, ext)
    found = tabular.describe_csv(path, name, strict=ext in ("csv", "tsv"))
    return found if found is not None else tabular.describe_text(path, name)


# --------------------------------------------------------------------------------------------- siblings


def _parts(
    path: Path, name: str, own_ext: str, wanted: tuple[str, ...], siblings: Mapping[str, Path] | None
) -> dict[str, Path | None]:
    """The companion files of ``name`` (same stem), by extension; the file itself under ``own_ext``."""
    stem = stem_of(name).lower()
    parts: dict[str, Path | None] = {ext: None for ext in wanted}
    if siblings is not None:
        by_name = {n.lower(): p for n, p in siblings.items()}
        for ext in wanted:
            parts[ext] = by_name.get(f"{stem}.{ext}")
    elif path.name == name:
        for ext in wanted:
            for candidate in (f"{stem_of(name)}.{ext}", f"{stem_of(name)}.{ext.upper()}"):
                if (path.parent / candidate).is_file():
                    parts[ext] = path.parent / candidate
                    break
    parts[own_ext] = path
    return parts


@contextlib.contextmanager
def _linked(stem: str, parts: Mapping[str, Path | None]) -> Iterator[dict[str, Path]]:
    """A temporary directory where the parts appear under one stem, as GDAL expects them."""
    safe_stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem) or "donnees"
    with tempfile.TemporaryDirectory(prefix="broker-inspect-") as tmp:
        linked: dict[str, Path] = {}
        for ext, source in parts.items():
            if source is None:
                continue
            target = Path(tmp) / f"{safe_stem}.{ext}"
            try:
                os.symlink(source.resolve(), target)
            except OSError:
                shutil.copyfile(source, target)
            linked[ext] = target
        yield linked


def _describe_lone_shapefile(path: Path, name: str, siblings: Mapping[str, Path] | None) -> FileDescription:
    parts = _parts(path, name, "shp", tuple(p for p in SHAPEFILE_PARTS if p != "shp"), siblings)
    vector.check_shapefile_parts(name, name, parts)
    with _linked(stem_of(name), parts) as linked:
        found: dict[str, Path | None] = dict(linked.items())
        description = vector.describe_shapefiles([(name, found)], name)
    description.warnings.append(
        f"« {name} » est un Shapefile envoyé fichier par fichier : une archive .zip le garde entier."
    )
    description.details["parts"] = sorted(ext for ext, p in parts.items() if p is not None)
    return description


def _describe_raster(
    path: Path, name: str, ext: str, content: str, siblings: Mapping[str, Path] | None
) -> FileDescription:
    own = ext or ("jp2" if content == "jp2" else "tif")
    parts = _parts(path, name, own, WORLD_FILE_PARTS, siblings)
    if all(p is None for e, p in parts.items() if e != own):
        return raster.describe_raster(path, name)
    with _linked(stem_of(name), parts) as linked:
        description = raster.describe_raster(linked[own], name, sidecars=True)
    description.details["sidecars"] = sorted(e for e, p in parts.items() if p is not None and e != own)
    return description


# --------------------------------------------------------------------------------------------- ZIP


def _describe_zip(path: Path, name: str, ext: str, size: int, limits: ArchiveLimits) -> FileDescription:
    with open_zip(path, name) as zf:
        budget = ExtractionBudget(name, limits)
        listing = check_archive(zf, name, limits, archive_size=size, budget=budget)
        if ext in OFFICE_EXTENSIONS:
            return FileDescription(
                format=ext,
                kind="document",
                media_type=mimetypes.guess_type(name)[0],
                details={"archive": listing.to_details()},
            )
        if ext == "kmz":
            return FileDescription(
                format="kmz",
                kind="vector",
                media_type="application/vnd.google-earth.kmz",
                details={"archive": listing.to_details()},
            )
        if gtfs.looks_like_gtfs(listing):
            return gtfs.describe_gtfs(zf, listing, name, budget)
        infos = {member_name(i): i for i in zf.infolist() if not i.is_dir() and not is_junk(member_name(i))}
        shapefiles = sorted(n for n in infos if n.lower().endswith(".shp"))
        if shapefiles:
            return _describe_zipped_shapefiles(zf, name, listing, infos, shapefiles, budget)
        packages = [n for n in infos if n.lower().endswith(".gpkg")]
        if len(packages) == 1:
            return _describe_zipped_gpkg(zf, name, listing, infos[packages[0]], budget)
        notes = []
        if listing.unsupported:
            notes.append(
                f"« {name} » contient {len(listing.unsupported)} fichier(s) compressé(s) d'une manière "
                "que le broker ne sait pas lire (Deflate64 ?) : ils n'ont pas été vérifiés. "
                "Recompressez l'archive."
            )
        return FileDescription(
            format="zip",
            kind="archive",
            media_type=FORMATS["zip"].media_type,
            details={"archive": listing.to_details()},
            warnings=notes,
        )


def _describe_zipped_shapefiles(
    zf: zipfile.ZipFile,
    name: str,
    listing: ArchiveListing,
    infos: dict[str, zipfile.ZipInfo],
    shapefiles: list[str],
    budget: ExtractionBudget,
) -> FileDescription:
    lowered = {n.lower(): n for n in infos}
    with tempfile.TemporaryDirectory(prefix="broker-zip-") as tmp:
        sets: list[tuple[str, dict[str, Path | None]]] = []
        for shp in shapefiles:
            stem = shp[:-4]
            members = {ext: lowered.get(f"{stem.lower()}.{ext}") for ext in SHAPEFILE_PARTS}
            vector.check_shapefile_parts(name, shp, {e: Path(m) if m else None for e, m in members.items()})
            parts: dict[str, Path | None] = {}
            for ext, member in members.items():
                parts[ext] = extract_member(zf, infos[member], Path(tmp), budget) if member else None
            sets.append((shp, parts))
        description = vector.describe_shapefiles(sets, name, media_type=FORMATS["zip"].media_type)
    description.details["container"] = "zip"
    description.details["archive"] = listing.to_details()
    return description


def _describe_zipped_gpkg(
    zf: zipfile.ZipFile, name: str, listing: ArchiveListing, info: zipfile.ZipInfo, budget: ExtractionBudget
) -> FileDescription:
    with tempfile.TemporaryDirectory(prefix="broker-zip-") as tmp:
        extracted = extract_member(zf, info, Path(tmp), budget)
        inner = member_name(info)
        if _content(extracted, read_head(extracted), "gpkg") != "gpkg":
            raise IntakeRefused(
                name, f"« {inner} », dans « {name} », n'est pas un GeoPackage valide.", "type_mismatch"
            )
        description = _describe_gpkg(extracted, name, media_type=FORMATS["zip"].media_type)
    description.details["container"] = "zip"
    description.details["member"] = inner
    description.details["archive"] = listing.to_details()
    return description
