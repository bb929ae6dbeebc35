"""API shapes of the access domain."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.access.models import NOTE_MAX_LENGTH, REASON_MAX_LENGTH

#: A list of thousands of names is a mistake (or an attack on the manifest size), not an access policy.
MAX_LIST_ENTRIES = 500
RequestStatus = Literal["pending", "granted", "refused", "cancelled"]


class AccessListIn(BaseModel):
    """The whole list (PUT semantics): who may read the restricted publication."""

    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(
        default_factory=list,
        max_length=MAX_LIST_ENTRIES,
        description="OIDC subjects (`sub`) or email addresses. Emails are compared without case.",
    )
    organizations: list[str] = Field(
        default_factory=list,
        max_length=MAX_LIST_ENTRIES,
        description="Slugs of registered organisations; every member may read.",
    )


class AccessListOut(BaseModel):
    publication_id: str
    organization: str = Field(description="Slug of the publication's organisation (its members always read).")
    access: Literal["open", "restricted"]
    revision: int = Field(description="The publication's current revision (a change makes a new one).")
    changed: bool = Field(False, description="True when this call made a new revision.")
    users: list[str]
    organizations: list[str]


class AccessRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        max_length=REASON_MAX_LENGTH,
        description="Why the person needs the data (shown to the organisation's referent).",
    )


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        None, max_length=NOTE_MAX_LENGTH, description="Optional note shown to the requester."
    )


class AccessRequestOut(BaseModel):
    id: str
    publication_id: str
    publication_title: str | None = None
    organization: str | None = Field(None, description="Slug of the publication's organisation.")
    subject: str
    email: str | None = None
    username: str | None = None
    reason: str
    status: RequestStatus
    decided_by: str | None = None
    decision_note: str | None = None
    created_at: str
    decided_at: str | None = None


class ServiceAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=255, description="The OIDC client id (Keycloak).")
    organization: str = Field(min_length=1, max_length=100, description="Slug of a registered organisation.")
    role: Literal["producer", "referent", "staff", "board"]
