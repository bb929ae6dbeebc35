"""API shapes of the auth domain."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from broker.auth.principal import Principal


class PrincipalOut(BaseModel):
    """The caller as the broker sees it (``GET /api/v1/auth/me``)."""

    subject: str
    username: str | None
    email: str | None
    roles: list[str] = Field(description="Broker roles: producer, referent, staff, board.")
    organizations: list[str] = Field(description="Organisation slugs.")
    client_id: str | None
    service_account: bool
    issuer: str

    @classmethod
    def from_principal(cls, principal: Principal) -> PrincipalOut:
        return cls(
            subject=principal.subject,
            username=principal.username,
            email=principal.email,
            roles=sorted(principal.roles),
            organizations=list(principal.organizations),
            client_id=principal.client_id,
            service_account=principal.service_account,
            issuer=principal.issuer,
        )


class ServiceAccountOut(BaseModel):
    client_id: str
    organization: str
    role: str
    created_at: datetime
