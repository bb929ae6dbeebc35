"""Reference lists of the data.gouv.fr emulator, and the small text helpers udata applies to input.

Everything cites ``research/datagouv-api.md`` (§ numbers) or udata's code (``opendatateam/udata`` @ 25b5a2d,
udata 17.6.0). Where the research says UNCONFIRMED, so does this module.
"""

from __future__ import annotations

import mimetypes
import os
import re
import unicodedata

# --------------------------------------------------------------------------------------------- licences

# The licence table lives in data.gouv.fr's database (§4): these are the ids the production front end knows
# [cdata nuxt.config.ts], with the titles and URLs of udata's fixtures. UNCONFIRMED: the exact production
# titles and alternate URLs; fetch /datasets/licenses/ on the real platform rather than trusting this copy.
LICENSES: list[dict[str, object]] = [
    {
        "id": "lov2",
        "title": "Licence Ouverte / Open Licence version 2.0",
        "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence",
        "maintainer": "Etalab",
        "flags": ["domain_software", "domain_content", "domain_data"],
        "alternate_urls": [
            "https://www.etalab.gouv.fr/wp-content/uploads/2017/04/ETALAB-Licence-Ouverte-v2.0.pdf"
        ],
        "alternate_titles": ["etalab-2.0", "Licence Ouverte v2.0"],
    },
    {
        "id": "fr-lo",
        "title": "Licence Ouverte / Open Licence",
        "url": "http://www.data.gouv.fr/Licence-Ouverte-Open-Licence",
        "maintainer": "Etalab",
        "flags": ["domain_content", "domain_data"],
        "alternate_urls": [],
        "alternate_titles": ["etalab-1.0"],
    },
    {
        "id": "odc-odbl",
        "title": "Open Data Commons Open Database License (ODbL)",
        "url": "http://opendatacommons.org/licenses/odbl/summary/",
        "maintainer": "Open Data Commons",
        "flags": ["domain_data"],
        "alternate_urls": [],
        "alternate_titles": ["ODbL"],
    },
    {
        "id": "odc-by",
        "title": "Open Data Commons Attribution License",
        "url": "http://opendatacommons.org/licenses/by/summary/",
        "maintainer": "Open Data Commons",
        "flags": ["domain_data"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    {
        "id": "odc-pddl",
        "title": "Open Data Commons Public Domain Dedication and Licence (PDDL)",
        "url": "http://opendatacommons.org/licenses/pddl/summary/",
        "maintainer": "Open Data Commons",
        "flags": ["domain_data"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    {
        "id": "cc-by",
        "title": "Creative Commons Attribution",
        "url": "http://www.opendefinition.org/licenses/cc-by",
        "maintainer": "Creative Commons",
        "flags": ["domain_content", "domain_data"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    {
        "id": "cc-by-sa",
        "title": "Creative Commons Attribution Share-Alike",
        "url": "http://www.opendefinition.org/licenses/cc-by-sa",
        "maintainer": "Creative Commons",
        "flags": ["domain_content", "domain_data"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    {
        "id": "cc-zero",
        "title": "Creative Commons CCZero",
        "url": "http://www.opendefinition.org/licenses/cc-zero",
        "maintainer": "Creative Commons",
        "flags": ["domain_content", "domain_data"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    {
        "id": "other-at",
        "title": "Other (Attribution)",
        "url": None,
        "maintainer": None,
        "flags": ["generic"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    {
        "id": "other-open",
        "title": "Other (Open)",
        "url": None,
        "maintainer": None,
        "flags": ["generic"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    {
        "id": "other-pd",
        "title": "Other (Public Domain)",
        "url": None,
        "maintainer": None,
        "flags": ["generic"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
    # udata DEFAULT_LICENSE (core/dataset/constants.py); a dataset without licence serialises as this id (§2).
    {
        "id": "notspecified",
        "title": "License Not Specified",
        "url": None,
        "maintainer": None,
        "flags": ["generic"],
        "alternate_urls": [],
        "alternate_titles": [],
    },
]
LICENSE_IDS = frozenset(str(item["id"]) for item in LICENSES)

# --------------------------------------------------------------------------------------------- frequencies

# udata 17 UpdateFrequency (core/dataset/constants.py), EU vocabulary, in declaration order (§4).
FREQUENCIES: list[tuple[str, str]] = [
    ("continuous", "Real time"),
    ("oneMinute", "Every minute"),
    ("fiveMinutes", "Every five minutes"),
    ("tenMinutes", "Every ten minutes"),
    ("fifteenMinutes", "Every fifteen minutes"),
    ("thirtyMinutes", "Every thirty minute"),
    ("hourly", "Every hour"),
    ("bihourly", "Every two hours"),
    ("trihourly", "Every three hours"),
    ("twelveHours", "Every twelve hours"),
    ("severalTimesADay", "Several times a day"),
    ("threeTimesADay", "Three times a day"),
    ("semidaily", "Twice a day"),
    ("daily", "Daily"),
    ("fiveTimesAWeek", "Five times a week"),
    ("threeTimesAWeek", "Three times a week"),
    ("semiweekly", "Twice a week"),
    ("weekly", "Weekly"),
    ("biweekly", "Every two weeks"),
    ("threeTimesAMonth", "Three times a month"),
    ("semimonthly", "Twice a month"),
    ("monthly", "Monthly"),
    ("bimonthly", "Every two months"),
    ("quarterly", "Quarterly"),
    ("threeTimesAYear", "Three times a year"),
    ("semiannual", "Twice a year"),
    ("annual", "Annually"),
    ("biennial", "Every two years"),
    ("triennial", "Every three years"),
    ("quadrennial", "Every four years"),
    ("quinquennial", "Every five years"),
    ("decennial", "Every ten years"),
    ("bidecennial", "Every twenty years"),
    ("tridecennial", "Every thirty years"),
    ("punctual", "Punctual"),
    ("irregular", "Irregular"),
    ("never", "Never"),
    ("notPlanned", "Not planned"),
    ("other", "Other"),
    ("unknown", "Unknown"),
]
FREQUENCY_IDS = frozenset(fid for fid, _ in FREQUENCIES)
# UpdateFrequency._LEGACY_FREQUENCIES: accepted on input, stored as their modern id.
LEGACY_FREQUENCIES = {
    "realtime": "continuous",
    "fourTimesADay": "severalTimesADay",
    "fourTimesAWeek": "other",
    "fortnighly": "biweekly",
    "biannual": "semiannual",
}

# --------------------------------------------------------------------------------------------- resources

RESOURCE_TYPES: list[tuple[str, str]] = [
    ("main", "Main file"),
    ("documentation", "Documentation"),
    ("update", "Update"),
    ("api", "API"),
    ("code", "Code repository"),
    ("other", "Other"),
]
RESOURCE_TYPE_IDS = frozenset(rid for rid, _ in RESOURCE_TYPES)
RESOURCE_FILETYPES = ("file", "remote")
CHECKSUM_TYPES = ("sha1", "sha2", "sha256", "md5", "crc")

# udata settings.py ALLOWED_ARCHIVE_EXTENSIONS + ALLOWED_RESOURCES_EXTENSIONS defaults (udata 17.6). The
# research (§3, §7.8) warns production may override them: check /datasets/extensions/ on the target.
ARCHIVE_EXTENSIONS: tuple[str, ...] = ("tar", "gz", "tgz", "rar", "zip", "7z", "xz", "bz2")
ALLOWED_EXTENSIONS: tuple[str, ...] = (
    *ARCHIVE_EXTENSIONS,
    "csv", "txt", "json", "pdf", "xml", "rtf", "xsd",
    "ods", "odt", "odp", "odg",
    "xls", "xlsx", "doc", "docx", "pps", "ppt",
    "jpeg", "jpg", "jpe", "gif", "png", "dwg", "svg", "tiff", "ecw", "svgz", "jp2", "webp",
    "shp", "kml", "kmz", "gpx", "shx", "ovr", "geojson", "gpkg",
    "grib2",
    "rdf", "ttl", "n3",
    "dbf", "prj", "sql", "sqlite", "db", "epub", "sbn", "sbx", "cpg", "lyr", "owl", "dxf",
)  # fmt: skip

# Formats data.gouv.fr's quality score counts as closed [udata Dataset.compute_quality, CLOSED_FORMATS].
CLOSED_FORMATS = frozenset({"pdf", "doc", "docx", "word", "xls", "excel", "xlsx"})

# --------------------------------------------------------------------------------------------- spatial

# GeoLevels the front end knows [cdata types/search.ts], plus poi/other as granularities (§4).
LEVELS: list[tuple[str, str, int]] = [
    ("country-group", "Country group", 10),
    ("country", "Country", 20),
    ("country-subset", "Country subset", 30),
    ("fr:region", "French region", 40),
    ("fr:departement", "French county", 60),
    ("fr:arrondissement", "French arrondissement", 70),
    ("fr:epci", "French intermunicipal (EPCI)", 68),
    ("fr:canton", "French canton", 98),
    ("fr:collectivite", "French overseas collectivities", 60),
    ("fr:commune", "French town", 100),
    ("fr:iris", "Iris (Insee districts)", 110),
]
GRANULARITIES: list[tuple[str, str]] = [
    *((level, name) for level, name, _ in LEVELS),
    ("poi", "POI"),
    ("other", "Other"),
]
GRANULARITY_IDS = frozenset(gid for gid, _ in GRANULARITIES)


def _zone(level: str, code: str, name: str) -> dict[str, str]:
    return {"id": f"{level}:{code}", "level": level, "code": code, "name": name}


# A small built-in table: the world, France, Occitanie, its 13 départements, their prefectures and a few more
# towns and EPCIs. The real platform holds every French zone; `/_emulator/zones` adds more at run time.
ZONES: list[dict[str, str]] = [
    _zone("country-group", "world", "Monde"),
    _zone("country-group", "ue", "Union Européenne"),
    _zone("country", "fr", "France"),
    _zone("fr:region", "76", "Occitanie"),
    _zone("fr:region", "75", "Nouvelle-Aquitaine"),
    _zone("fr:region", "93", "Provence-Alpes-Côte d'Azur"),
    _zone("fr:region", "84", "Auvergne-Rhône-Alpes"),
    _zone("fr:departement", "09", "Ariège"),
    _zone("fr:departement", "11", "Aude"),
    _zone("fr:departement", "12", "Aveyron"),
    _zone("fr:departement", "30", "Gard"),
    _zone("fr:departement", "31", "Haute-Garonne"),
    _zone("fr:departement", "32", "Gers"),
    _zone("fr:departement", "34", "Hérault"),
    _zone("fr:departement", "46", "Lot"),
    _zone("fr:departement", "48", "Lozère"),
    _zone("fr:departement", "65", "Hautes-Pyrénées"),
    _zone("fr:departement", "66", "Pyrénées-Orientales"),
    _zone("fr:departement", "81", "Tarn"),
    _zone("fr:departement", "82", "Tarn-et-Garonne"),
    _zone("fr:commune", "09122", "Foix"),
    _zone("fr:commune", "11069", "Carcassonne"),
    _zone("fr:commune", "11262", "Narbonne"),
    _zone("fr:commune", "12145", "Millau"),
    _zone("fr:commune", "12202", "Rodez"),
    _zone("fr:commune", "30007", "Alès"),
    _zone("fr:commune", "30189", "Nîmes"),
    _zone("fr:commune", "31555", "Toulouse"),
    _zone("fr:commune", "32013", "Auch"),
    _zone("fr:commune", "34003", "Agde"),
    _zone("fr:commune", "34032", "Béziers"),
    _zone("fr:commune", "34172", "Montpellier"),
    _zone("fr:commune", "34301", "Sète"),
    _zone("fr:commune", "46042", "Cahors"),
    _zone("fr:commune", "48095", "Mende"),
    _zone("fr:commune", "65286", "Lourdes"),
    _zone("fr:commune", "65440", "Tarbes"),
    _zone("fr:commune", "66136", "Perpignan"),
    _zone("fr:commune", "81004", "Albi"),
    _zone("fr:commune", "81065", "Castres"),
    _zone("fr:commune", "82121", "Montauban"),
    _zone("fr:epci", "243400017", "Montpellier Méditerranée Métropole"),
    _zone("fr:epci", "243100518", "Toulouse Métropole"),
    _zone("fr:epci", "243000643", "Nîmes Métropole"),
    _zone("fr:epci", "200066355", "Perpignan Méditerranée Métropole"),
]


def parse_geoid(text: str) -> str | None:
    """udata ``geoids.parse`` + ``legacy_geoid``: drop an ``@date`` suffix, lowercase, ``/`` -> ``:``.

    Returns the normalised id, or None when the text has no level separator ("Bad GeoID format").
    """
    spatial = text.split("@", 1)[0].lower().replace("/", ":")
    if ":" not in spatial:
        return None
    return spatial


# --------------------------------------------------------------------------------------------- access

ACCESS_TYPES = ("open", "open_with_account", "restricted")
# udata access_type InspireLimitationCategory values (UNCONFIRMED: labels not needed, only ids are checked).
ACCESS_REASON_CATEGORIES = (
    "public-authorities-confidentiality",
    "international-relations",
    "course-of-justice",
    "commercial-confidentiality",
    "intellectual-property",
    "personal-data",
    "interests-of-supplier",
    "environment-protection",
    "other",
)

CONTACT_ROLES: list[tuple[str, str]] = [
    ("contact", "Contact"),
    ("creator", "Creator"),
    ("publisher", "Publisher"),
    ("rightsHolder", "Rights Holder"),
    ("custodian", "Custodian"),
    ("distributor", "Distributor"),
    ("originator", "Originator"),
    ("principalInvestigator", "Principal Investigator"),
    ("processor", "Processor"),
    ("resourceProvider", "Resource Provider"),
    ("user", "User"),
]
CONTACT_ROLE_IDS = frozenset(rid for rid, _ in CONTACT_ROLES)

ORG_ROLES = ("admin", "editor", "partial_editor")

# --------------------------------------------------------------------------------------------- text helpers

# Letters NFKD cannot split into ASCII; python-slugify (text-unidecode) spells them out.
_TRANSLITERATE = str.maketrans(
    {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O", "đ": "d", "ł": "l", "Ł": "L"}
)


def ascii_fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value.translate(_TRANSLITERATE))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def slugify(value: str, *, keep: str = "") -> str:
    """python-slugify as udata calls it: transliterate, lowercase, runs of other characters -> ``-``."""
    allowed = re.escape(keep)
    return re.sub(rf"[^a-z0-9{allowed}]+", "-", ascii_fold(value).lower()).strip("-")


def tag_slug(value: str) -> str:
    """udata ``tags.slug``: ``slugify(value.lower())``."""
    return slugify(value)


def normalize_filename(filename: str) -> str:
    """udata ``storages.utils.normalize``: awesome-slugify with ``safe_chars="."`` (dots kept)."""
    return slugify(os.path.basename(filename), keep=".")


def extension(filename: str) -> str | None:
    """udata ``storages.utils.extension``: the last extension, plus previous ones behind archive extensions.

    ``test.2022.csv.tar.gz`` -> ``csv.tar.gz``; ``test.geojson.csv`` -> ``csv``;
    ``test.unknown`` -> ``unknown``.
    """
    name = os.path.basename(filename)
    found: str | None = None
    while "." in name:
        name, ext = os.path.splitext(name)
        ext = ext[1:] if ext.startswith(".") else ext
        if found and ext not in ALLOWED_EXTENSIONS:
            break
        found = ext if not found else f"{ext}.{found}"
        if ext not in ARCHIVE_EXTENSIONS:
            break
    return found


def storage_allows(filename: str) -> bool:
    """flask-storage's check on the resources storage: the *last* extension must be whitelisted."""
    _, ext = os.path.splitext(filename)
    return ext[1:].lower() in ALLOWED_EXTENSIONS


def guess_mime(filename: str) -> str:
    """udata ``storages.utils.mime`` with its ``DEFAULT_MIME`` fallback."""
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
