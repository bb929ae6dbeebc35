"""Shapes the regional store answers with, and the viewer it is given by the application."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Viewer(Protocol):
    """Who is asking; the application's ``get_viewer`` dependency returns one, or None when anonymous.

    Read-only properties so that frozen dataclasses and pydantic models satisfy it too.
    """

    @property
    def subject(self) -> str: ...

    @property
    def email(self) -> str | None: ...

    @property
    def organizations(self) -> tuple[str, ...]: ...

    @property
    def is_staff(self) -> bool: ...


class FileSpec(BaseModel):
    """One resource to record: a stored blob (``sha256``) or a link (``url``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    media_type: str | None = None
    format: str | None = None


class RecordSpec(BaseModel):
    """Everything the store keeps about one publication revision."""

    model_config = ConfigDict(frozen=True)

    publication_id: str
    organization: str
    title: str
    revision: int
    access: Literal["open", "restricted"] = "open"
    restricted_users: tuple[str, ...] = ()
    restricted_organizations: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: tuple[FileSpec, ...] = ()


class FileOut(BaseModel):
    name: str
    title: str | None = None
    size: int | None = None
    sha256: str | None = None
    media_type: str | None = None
    format: str | None = None
    url: str = Field(description="The download URL, or the producer's URL for a link.")
    hosted: bool = Field(description="True when the regional store serves the bytes itself.")


class RecordOut(BaseModel):
    id: str = Field(description="The publication id.")
    organization: str
    title: str
    revision: int
    access: Literal["open", "restricted"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: list[FileOut] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class ErrorOut(BaseModel):
    error: str
    detail: str
