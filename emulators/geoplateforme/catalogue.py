"""The platform's global resources an emulated datastore is given: checks, processings, endpoints, storages.

Names come from geoplateforme-api.md §2.2 (processings) and §2.1 (checks). Processing ids differ from
one environment to another and must be resolved by name per datastore (§2.2 step 7), so every datastore
gets its own ids here. Endpoint names, technical names and URL paths follow the diffusion roots of §1; the
offering URLs built from them are UNCONFIRMED in their exact query strings.
"""

from __future__ import annotations

from typing import Any

CHECK_STANDARD = "Vérification standard"
CHECK_VECTOR = "Vérification vecteur"
CHECK_RASTER = "Vérification raster"

CHECKS: list[dict[str, Any]] = [
    {
        "name": CHECK_STANDARD,
        "description": "Contrôle la présence des fichiers et les signatures MD5 fournies.",
        "default_uploads_check": ["VECTOR", "RASTER", "ARCHIVE", "ROK4-PYRAMID"],
    },
    {
        "name": CHECK_VECTOR,
        "description": "Contrôle la lisibilité des données vecteur, leur SRS et le nom des tables.",
        "default_uploads_check": ["VECTOR"],
    },
    {
        "name": CHECK_RASTER,
        "description": "Contrôle la lisibilité des images et leur SRS.",
        "default_uploads_check": ["RASTER"],
    },
]

VECTOR_DB = "Intégration de données vecteur livrées en base"
RASTER_PYRAMID = "Calcul de pyramide raster"
VECTOR_PYRAMID = "Calcul ou mise à jour de pyramide vecteur"
ARCHIVE_COPY = "Recopie d'une archive livrée"


def _parameter(name: str, description: str, mandatory: bool = False, default: Any = None) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "description": description, "mandatory": mandatory}
    if default is not None:
        parameter["default_value"] = default
    return parameter


PROCESSINGS: list[dict[str, Any]] = [
    {
        "name": VECTOR_DB,
        "description": "Intègre les données vecteur d'une livraison dans une base PostgreSQL.",
        "input_types": {"upload": ["VECTOR"], "stored_data": []},
        "output_type": {"stored_data": "VECTOR-DB", "storage": ["POSTGRESQL"]},
        "parameters": [_parameter("srs", "Projection de reprojection des données (EPSG:xxxx)")],
        "required_checks": [CHECK_STANDARD, CHECK_VECTOR],
        "kind": "vector-db",
    },
    {
        "name": RASTER_PYRAMID,
        "description": "Calcule une pyramide d'images ROK4 à partir d'une livraison raster.",
        "input_types": {"upload": ["RASTER"], "stored_data": []},
        "output_type": {"stored_data": "ROK4-PYRAMID-RASTER", "storage": ["S3"]},
        "parameters": [
            _parameter("tms", "Quadrillage (TileMatrixSet) de la pyramide", mandatory=True),
            _parameter("compression", "Compression des dalles (jpg, png, …)", default="jpg"),
            _parameter("interpolation", "Interpolation (nn, linear, bicubic)", default="bicubic"),
            _parameter("bottom", "Niveau le plus détaillé"),
            _parameter("top", "Niveau le moins détaillé"),
            _parameter("mask", "Calcul d'un masque de données", default=False),
        ],
        "required_checks": [CHECK_STANDARD, CHECK_RASTER],
        "kind": "raster-pyramid",
    },
    {
        "name": VECTOR_PYRAMID,
        "description": "Calcule ou met à jour une pyramide de tuiles vectorielles (tippecanoe).",
        "input_types": {"upload": [], "stored_data": ["VECTOR-DB"]},
        "output_type": {"stored_data": "ROK4-PYRAMID-VECTOR", "storage": ["S3"]},
        "parameters": [
            _parameter("bottom_level", "Niveau le plus détaillé", mandatory=True),
            _parameter("top_level", "Niveau le moins détaillé", mandatory=True),
            _parameter("tippecanoe_options", "Options de généralisation"),
            _parameter("composition", "Tables et niveaux à tuiler"),
        ],
        "required_checks": [],
        "kind": "vector-pyramid",
    },
    {
        "name": ARCHIVE_COPY,
        "description": "Recopie les fichiers d'une livraison d'archive pour les diffuser en téléchargement.",
        "input_types": {"upload": ["ARCHIVE"], "stored_data": []},
        "output_type": {"stored_data": "ARCHIVE", "storage": ["S3"]},
        "parameters": [],
        "required_checks": [CHECK_STANDARD],
        "kind": "archive",
    },
    {
        "name": "Fusion de pyramides raster",
        "description": "Fusionne plusieurs pyramides raster en une seule (non émulé).",
        "input_types": {"upload": [], "stored_data": ["ROK4-PYRAMID-RASTER"]},
        "output_type": {"stored_data": "ROK4-PYRAMID-RASTER", "storage": ["S3"]},
        "parameters": [],
        "required_checks": [],
        "kind": "unsupported",
    },
    {
        "name": "Calcul ou mise à jour de pyramide raster par moissonnage WMS",
        "description": "Moissonne un service WMS dans une pyramide raster (non émulé).",
        "input_types": {"upload": [], "stored_data": []},
        "output_type": {"stored_data": "ROK4-PYRAMID-RASTER", "storage": ["S3"]},
        "parameters": [_parameter("harvest_url", "URL du service WMS moissonné", mandatory=True)],
        "required_checks": [],
        "kind": "unsupported",
    },
]

# Endpoint type -> [(url type, path under the open root or under /private)] (§1, "Diffusion roots").
ENDPOINT_KINDS: dict[str, list[tuple[str, str]]] = {
    "WFS": [("WFS", "wfs/ows")],
    "WMS-VECTOR": [("WMS", "wms-v/ows")],
    "WMS-RASTER": [("WMS", "wms-r")],
    "WMTS-TMS": [("WMTS", "wmts"), ("TMS", "tms/1.0.0")],
    "VECTOR-TMS": [("TMS", "vector-tms/1.0.0")],
    "DOWNLOAD": [("DOWNLOAD", "telechargement")],
    "METADATA": [("METADATA", "csw")],
}

ENDPOINT_TITLES = {
    "WFS": "Service de diffusion WFS",
    "WMS-VECTOR": "Service de diffusion WMS Vecteur",
    "WMS-RASTER": "Service de diffusion WMS Raster",
    "WMTS-TMS": "Service de diffusion WMTS/TMS",
    "VECTOR-TMS": "Service de diffusion de tuiles vectorielles",
    "DOWNLOAD": "Service de téléchargement",
    "METADATA": "Catalogue CSW",
}

# Which stored-data types each configuration type can use (§2.4 type_infos table; DOWNLOAD of archives only
# is an assumption of this emulator, UNCONFIRMED).
CONFIGURATION_INPUTS: dict[str, set[str]] = {
    "WFS": {"VECTOR-DB"},
    "WMS-VECTOR": {"VECTOR-DB"},
    "VECTOR-TMS": {"ROK4-PYRAMID-VECTOR"},
    "WMTS-TMS": {"ROK4-PYRAMID-RASTER"},
    "WMS-RASTER": {"ROK4-PYRAMID-RASTER"},
    "DOWNLOAD": {"ARCHIVE"},
}

CONFIGURATION_TYPES = [
    "WFS",
    "WMS-VECTOR",
    "WMS-RASTER",
    "WMTS-TMS",
    "VECTOR-TMS",
    "DOWNLOAD",
    "ITINERARY-ISOCURVE",
    "ALTIMETRY",
    "SEARCH",
]

UPLOAD_TYPES = [
    "VECTOR",
    "RASTER",
    "ARCHIVE",
    "ROK4-PYRAMID",
    "INDEX",
    "HISTORIC-IMAGERY",
    "POINT-CLOUD",
    "PYRAMID-3D",
]

STATIC_TYPES = ["GEOSERVER-STYLE", "GEOSERVER-FTL", "ROK4-STYLE", "DERIVATION-SQL"]

STORAGES: list[dict[str, Any]] = [
    {"name": "postgresql-vecteur", "type": "POSTGRESQL", "labels": ["VECTEUR", "POSTGRESQL"]},
    {"name": "s3-pyramides", "type": "S3", "labels": ["PYRAMIDE", "S3"]},
    {"name": "s3-archives", "type": "S3", "labels": ["ARCHIVE", "S3"]},
]

RIGHTS = ["COMMUNITY", "UPLOAD", "PROCESSING", "BROADCAST", "ANNEX"]
