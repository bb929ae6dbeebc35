"""Bodies the gap API accepts (answers are plain dicts built by the service, shapes in its docstrings)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

Status = Literal["open", "delivered", "dropped"]
Interim = Literal["regional", "hold", "degrade"]


class Probe(BaseModel):
    """A check that the platform seems to answer the need now: an HTTP request and what to expect.

    ``expect_json_path`` is a dotted path into the JSON answer (``$.a.b[0].c`` or ``a.b.0.c``); with
    ``expect_value`` the value there must equal it, without it the path must exist.
    """

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: int = Field(200, ge=100, le=599)
    expect_json_path: str | None = Field(None, max_length=300)
    expect_value: Any = None


class GapCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    need: str = Field(min_length=1, max_length=80)
    platform: Literal["datagouv", "geoplateforme"]
    target_date: date | None = None
    interim: Interim = "hold"
    mirror: bool = False
    upstream: str | None = Field(None, max_length=300)
    probe: Probe | None = None
    reason: str | None = Field(None, max_length=2000)


class GapPatch(BaseModel):
    """Fields to change; ``reason`` is required when the target date or the status changes."""

    model_config = ConfigDict(extra="forbid")

    target_date: date | None = None
    status: Status | None = None
    upstream: str | None = Field(None, max_length=300)
    interim: Interim | None = None
    mirror: bool | None = None
    probe: Probe | None = None
    reason: str | None = Field(None, max_length=2000)
