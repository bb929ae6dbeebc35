"""Build the metadata documents of a publication's current revision, with the service URLs it has."""

from __future__ import annotations

from sqlmodel import Session

from broker.deliveries import repository as deliveries
from broker.metadata.dcat import dcat_turtle
from broker.publications import repository as publications
from broker.publications import service as publication_service
from connectors.base import PublicationRevision
from connectors.geoplateforme import iso19139_record


def _current(session: Session, publication_id: str) -> PublicationRevision:
    publication = publication_service.get(session, publication_id)
    revision = publications.revision(session, publication.id, publication.revision)
    assert revision is not None
    return publication_service.revision_payload(session, revision.id)


def _service_urls(session: Session, publication_id: str) -> list[str]:
    record = deliveries.ledger(session, publication_id, "geoplateforme")
    return list(record.urls or []) if record and record.state == "present" else []


def iso19139(session: Session, publication_id: str) -> bytes:
    return iso19139_record(_current(session, publication_id), _service_urls(session, publication_id))


def dcat(session: Session, publication_id: str) -> str:
    return dcat_turtle(_current(session, publication_id), _service_urls(session, publication_id))
