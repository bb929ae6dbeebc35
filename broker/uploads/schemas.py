"""API shapes of uploads (the tus endpoints themselves speak headers, not JSON)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class UploadInfo(BaseModel):
    id: str
    filename: str | None
    length: int
    offset: int
    state: str
    sha256: str | None
    created_at: str | None
    expires_at: str | None
    metadata: dict[str, Any]
