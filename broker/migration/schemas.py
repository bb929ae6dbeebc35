"""Bodies the migration API accepts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MigrationRequest(BaseModel):
    """A migration for a gap (``gap_id``), or for a need that became A on a platform (``need`` and
    ``platform``). ``dry_run`` answers what would happen and acts on nothing."""

    model_config = ConfigDict(extra="forbid")

    gap_id: str | None = Field(None, max_length=200)
    need: str | None = Field(None, max_length=80)
    platform: Literal["datagouv", "geoplateforme"] | None = None
    dry_run: bool = False
