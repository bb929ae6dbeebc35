"""Tables of the auth domain."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from broker.models_base import created_field, id_field


class ServiceAccount(SQLModel, table=True):
    """A machine client (OIDC ``client_credentials``) bound to exactly one organisation and one role.

    The binding is the broker's decision, not the token's: whatever roles or organisation the issuer put
    in a service-account token, the broker acts on this row, and a client without a row may do nothing.
    """

    __tablename__ = "service_account"

    id: str = id_field()
    client_id: str = Field(index=True, unique=True, max_length=255)
    organization: str = Field(index=True, max_length=100)  # organisation slug
    role: str = Field(max_length=20)  # one of broker.auth.settings.BROKER_ROLES
    created_at: datetime = created_field()
