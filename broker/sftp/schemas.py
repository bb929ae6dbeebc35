"""API shapes of SFTP keys and drops."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SftpKeyCreate(BaseModel):
    public_key: str = Field(
        min_length=20,
        max_length=16000,
        description="One OpenSSH public key line, e.g. `ssh-ed25519 AAAA… commentaire`.",
    )
    label: str = Field("", max_length=200, description="Who or what uses this key (shown in the audit).")


class SftpKeyPublic(BaseModel):
    id: str
    label: str
    algorithm: str
    fingerprint: str
    public_key: str
    created_at: str | None
    created_by: str | None
    last_used_at: str | None
