"""Who is calling: the broker's view of an authenticated caller, whatever issued its token."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``subject`` is the token's ``sub`` (stable per issuer; Keycloak user ids are UUIDs). ``roles`` holds
    broker roles only (producer, referent, staff, board), already mapped from the issuer's names.
    ``organizations`` are organisation slugs. For a service account, ``roles`` and ``organizations`` come
    from its binding in the ``service_account`` table, never from the token.
    """

    subject: str
    username: str | None
    email: str | None
    roles: frozenset[str]
    organizations: tuple[str, ...]
    client_id: str | None
    service_account: bool
    issuer: str

    def has_role(self, *roles: str) -> bool:
        """True when the principal holds at least one of ``roles``."""
        return any(role in self.roles for role in roles)

    @property
    def is_staff(self) -> bool:
        return "staff" in self.roles

    def belongs_to(self, slug: str) -> bool:
        return slug in self.organizations

    @property
    def display_name(self) -> str:
        """For audit lines and the dashboard: the username when there is one, else the subject."""
        return self.username or self.email or self.subject
