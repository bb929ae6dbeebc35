"""GTFS feeds (zipped): the files the GTFS Schedule reference requires, and referential integrity.

Required files (gtfs.org "Schedule Reference", Dataset Files): agency.txt, routes.txt, trips.txt,
stop_times.txt; stops.txt unless demand-responsive zones come in locations.geojson; calendar.txt or
calendar_dates.txt (at least one). Files sit at the root of the archive and are UTF-8 ("Dataset
Attributes"). A trip pointing at a missing route, or a stop time at a missing trip or stop, makes
the feed unusable by journey planners: such a feed is refused with the first examples, rather than
published and rejected downstream (peers.md §10, complaint 6).
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from broker.intake.archives import ArchiveListing, ExtractionBudget, is_junk, member_name, open_member
from broker.intake.detect import FileDescription
from broker.intake.formats import FORMATS, IntakeRefused

logger = logging.getLogger(__name__)

GTFS_CORE = frozenset(
    {
        "agency.txt",
        "stops.txt",
        "routes.txt",
        "trips.txt",
        "stop_times.txt",
        "calendar.txt",
        "calendar_dates.txt",
    }
)
REQUIRED = ("agency.txt", "routes.txt", "trips.txt", "stop_times.txt")
EXAMPLES = 5

# (file, column) -> (referenced file, referenced column); checked in this order.
REFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("trips.txt", "route_id", "routes.txt", "route_id"),
    ("trips.txt", "service_id", "calendar.txt|calendar_dates.txt", "service_id"),
    ("stop_times.txt", "trip_id", "trips.txt", "trip_id"),
    ("stop_times.txt", "stop_id", "stops.txt", "stop_id"),
)
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "routes.txt": ("route_id",),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id",),
    "stops.txt": ("stop_id",),
    "calendar.txt": ("service_id", "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date"),
}


def looks_like_gtfs(listing: ArchiveListing) -> bool:
    names = {e.basename.lower() for e in listing.files() if not is_junk(e.name)}
    return len(names & GTFS_CORE) >= 2


@dataclass
class _Broken:
    count: int = 0
    examples: list[str] = field(default_factory=list)


class _Feed:
    def __init__(self, zf: zipfile.ZipFile, name: str, budget: ExtractionBudget) -> None:
        self.zf = zf
        self.name = name
        self.budget = budget
        self.root: dict[str, zipfile.ZipInfo] = {}
        nested: dict[str, str] = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            decoded = member_name(info)
            if is_junk(decoded):
                continue
            base = decoded.rsplit("/", 1)[-1].lower()
            if "/" in decoded:
                nested.setdefault(base, decoded)
            else:
                self.root[base] = info
        self.nested = nested
        self.rows: dict[str, int] = {}

    def rows_of(self, filename: str) -> Iterator[tuple[int, dict[str, str]]]:
        info = self.root[filename]
        stream = io.TextIOWrapper(
            io.BufferedReader(open_member(self.zf, info, self.budget)), encoding="utf-8-sig", newline=""
        )
        count = 0
        try:
            with stream:
                reader = csv.reader(stream)
                header = [h.strip() for h in next(reader, [])]
                missing = [c for c in REQUIRED_COLUMNS.get(filename, ()) if c not in header]
                if missing:
                    raise IntakeRefused(
                        self.name,
                        f"Le flux GTFS « {self.name} » : {filename} n'a pas la colonne obligatoire "
                        f"{', '.join(missing)}.",
                        "gtfs_missing_columns",
                    )
                for line, values in enumerate(reader, start=2):
                    if not values or not any(v.strip() for v in values):
                        continue
                    count += 1
                    yield (
                        line,
                        {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)},
                    )
        except UnicodeDecodeError as exc:
            raise IntakeRefused(
                self.name,
                f"Le flux GTFS « {self.name} » : {filename} n'est pas encodé en UTF-8, comme l'exige la "
                "référence GTFS : réenregistrez-le en UTF-8.",
                "gtfs_not_utf8",
            ) from exc
        except csv.Error as exc:
            raise IntakeRefused(
                self.name,
                f"Le flux GTFS « {self.name} » : {filename} est un CSV illisible ({exc}).",
                "unreadable",
            ) from exc
        finally:
            self.rows[filename] = count

    def column(self, filename: str, column: str) -> set[str]:
        return {row.get(column, "") for _, row in self.rows_of(filename)}


def _check_files(feed: _Feed) -> None:
    present = set(feed.root)
    if not present & GTFS_CORE and set(feed.nested) & GTFS_CORE:
        folder = feed.nested[min(set(feed.nested) & GTFS_CORE)].rsplit("/", 1)[0]
        raise IntakeRefused(
            feed.name,
            f"Le flux GTFS « {feed.name} » range ses fichiers dans le dossier « {folder} » : "
            "la référence GTFS les veut à la racine de l'archive. "
            "Zippez les fichiers eux-mêmes, pas leur dossier.",
            "gtfs_not_at_root",
        )
    missing = [f for f in REQUIRED if f not in present]
    if "stops.txt" not in present and "locations.geojson" not in present:
        missing.append("stops.txt")
    if "calendar.txt" not in present and "calendar_dates.txt" not in present:
        missing.append("calendar.txt ou calendar_dates.txt")
    if missing:
        raise IntakeRefused(
            feed.name,
            f"Le flux GTFS « {feed.name} » est incomplet : il manque {', '.join(missing)}.",
            "gtfs_missing_files",
            details={"missing": missing},
        )


def _parse_date(value: str) -> date | None:
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) == 8 else None
    except ValueError:
        return None


def describe_gtfs(
    zf: zipfile.ZipFile,
    listing: ArchiveListing,
    name: str,
    budget: ExtractionBudget,
    *,
    today: Callable[[], date] = date.today,
) -> FileDescription:
    feed = _Feed(zf, name, budget)
    _check_files(feed)
    notes: list[str] = []

    agencies = [row.get("agency_name", "") for _, row in feed.rows_of("agency.txt")]
    known: dict[str, set[str]] = {"routes.txt": feed.column("routes.txt", "route_id")}
    services: set[str] = set()
    first: list[date] = []
    last: list[date] = []
    if "calendar.txt" in feed.root:
        for _, row in feed.rows_of("calendar.txt"):
            services.add(row["service_id"])
            start, end = _parse_date(row["start_date"]), _parse_date(row["end_date"])
            first.extend([start] if start else [])
            last.extend([end] if end else [])
    if "calendar_dates.txt" in feed.root:
        for _, row in feed.rows_of("calendar_dates.txt"):
            services.add(row["service_id"])
            day = _parse_date(row["date"])
            if day and row.get("exception_type", "1") == "1":
                first.append(day)
                last.append(day)
    known["calendar.txt|calendar_dates.txt"] = services

    box: list[float] | None = None
    if "stops.txt" in feed.root:
        stops: set[str] = set()
        for _, row in feed.rows_of("stops.txt"):
            stops.add(row["stop_id"])
            try:
                lat, lon = float(row.get("stop_lat", "")), float(row.get("stop_lon", ""))
            except ValueError:
                continue
            if -90 <= lat <= 90 and -180 <= lon <= 180 and (lat, lon) != (0.0, 0.0):
                box = (
                    [lon, lat, lon, lat]
                    if box is None
                    else [min(box[0], lon), min(box[1], lat), max(box[2], lon), max(box[3], lat)]
                )
        known["stops.txt"] = stops

    broken: dict[str, _Broken] = {}

    def check(filename: str, line: int, row: dict[str, str], column: str, target: str) -> None:
        value = row.get(column, "")
        if target in known and value and value not in known[target]:
            entry = broken.setdefault(f"{filename}.{column}", _Broken())
            entry.count += 1
            if len(entry.examples) < EXAMPLES:
                shown = target.replace("|", " ou ")
                entry.examples.append(f"{filename} ligne {line} : {column} « {value} » absent de {shown}")

    trips: set[str] = set()
    for line, row in feed.rows_of("trips.txt"):
        trips.add(row["trip_id"])
        check("trips.txt", line, row, "route_id", "routes.txt")
        check("trips.txt", line, row, "service_id", "calendar.txt|calendar_dates.txt")
    known["trips.txt"] = trips
    for line, row in feed.rows_of("stop_times.txt"):
        check("stop_times.txt", line, row, "trip_id", "trips.txt")
        check("stop_times.txt", line, row, "stop_id", "stops.txt")

    if broken:
        total = sum(b.count for b in broken.values())
        examples = [e for b in broken.values() for e in b.examples][:EXAMPLES]
        summary = ", ".join(f"{key} : {b.count}" for key, b in broken.items())
        raise IntakeRefused(
            name,
            f"Le flux GTFS « {name} » a {total} référence(s) cassée(s) ({summary}). "
            f"Premiers exemples : {' ; '.join(examples)}.",
            "gtfs_broken_references",
            details={key: {"count": b.count, "examples": b.examples} for key, b in broken.items()},
        )

    details: dict[str, Any] = {
        "files": sorted(feed.root),
        "rows": dict(sorted(feed.rows.items())),
        "agencies": agencies[:10],
        "archive": listing.to_details(),
    }
    if first and last:
        start, end = min(first), max(last)
        details["validity"] = {"start": start.isoformat(), "end": end.isoformat()}
        if end < today():
            notes.append(
                f"Le flux GTFS « {name} » a expiré : ses services s'arrêtent le {end.strftime('%d/%m/%Y')}."
            )
    if box is None:
        notes.append(f"Le flux GTFS « {name} » n'a aucun arrêt géolocalisé.")
    return FileDescription(
        format="gtfs",
        kind="gtfs",
        media_type=FORMATS["gtfs"].media_type,
        crs="EPSG:4326",  # GTFS coordinates are WGS84 (stops.txt stop_lat/stop_lon)
        extent_wgs84=[round(v, 7) for v in box] if box else None,
        details=details,
        warnings=notes,
    )
