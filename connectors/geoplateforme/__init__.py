"""The Géoplateforme (IGN, cartes.gouv.fr) connector: Entrepôt API client, resumable publication workflow,
ISO 19139 metadata. See ``shared/research/geoplateforme-api.md``."""

from connectors.geoplateforme.auth import totp
from connectors.geoplateforme.config import GeoplateformeConfig
from connectors.geoplateforme.connector import GeoplateformeConnector
from connectors.geoplateforme.metadata import ServiceLink, file_identifier, iso19139_record

__all__ = [
    "GeoplateformeConfig",
    "GeoplateformeConnector",
    "ServiceLink",
    "file_identifier",
    "iso19139_record",
    "totp",
]
