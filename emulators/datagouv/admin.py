"""The emulator's own admin API under ``/_emulator/``. NOT part of data.gouv.fr.

It lets ``broker up`` and the tests provision organizations, users and API keys, read the whole state
(deleted datasets included), purge soft-deleted datasets (data.gouv.fr does it "by the end of the day"),
switch fault injection and read-only mode at run time, and read the request log. No authentication: the
emulator listens on loopback.

- ``POST /_emulator/provision`` ``{"organization": {"slug", "name", "id"?}, "user": {...}?, "api_key"?}``
  -> ``{organization_id, organization_slug, user_id, api_key, created}``; idempotent per organization slug
  (the same key comes back). With ``api_key``, the user of that key (one service account for every
  organization) becomes admin of the organization instead of a new user.
- ``POST /_emulator/organizations`` ``{"name", "slug"?, "id"?}``; ``GET /_emulator/organizations``;
  ``POST /_emulator/organizations/{id}/members`` ``{"user_id", "role"}``.
- ``POST /_emulator/users`` ``{"first_name", "last_name", "email", "sysadmin",
  "organizations": [{"id", "role"}]}`` -> ``{user, api_key}``; ``POST /_emulator/users/{id}/tokens``;
  ``POST /_emulator/tokens/revoke`` ``{"api_key"}``.
- ``GET /_emulator/state``; ``GET /_emulator/datasets?organization=``; ``POST /_emulator/purge``;
  ``POST /_emulator/reset``; ``POST /_emulator/zones`` ``[{"id", "name"}]``.
- ``GET|PUT|DELETE /_emulator/faults`` (see :class:`~emulators.datagouv.faults.FaultSettings`);
  ``GET|PUT /_emulator/read-only`` ``{"enabled": bool}``; ``GET|DELETE /_emulator/requests?since=N``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emulators.datagouv import reference, serialize
from emulators.datagouv.faults import FaultSettings
from emulators.datagouv.forms import ApiError
from emulators.datagouv.store import is_object_id

if TYPE_CHECKING:
    from emulators.datagouv.app import Emulator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrganizationIn(_Model):
    name: str
    slug: str | None = None
    id: str | None = Field(None, description="A 24-hex id to reuse (e.g. the production org id).")


class MembershipIn(_Model):
    id: str
    role: str = "admin"


class UserIn(_Model):
    first_name: str = "Emulated"
    last_name: str = "User"
    email: str | None = None
    sysadmin: bool = False
    organizations: list[MembershipIn] = Field(default_factory=list)


class ProvisionIn(_Model):
    organization: OrganizationIn
    user: UserIn | None = None
    api_key: str | None = Field(
        None,
        description="Reuse the user of this key (a service account): it becomes admin of this organization.",
    )


class MemberIn(_Model):
    user_id: str
    role: str = "admin"


class TokenIn(_Model):
    api_key: str


class ZoneIn(_Model):
    id: str
    name: str


class ReadOnlyIn(_Model):
    enabled: bool


def _parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, {"message": "invalid body", "errors": exc.errors(include_url=False)}) from None


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, {"message": "expecting JSON"}) from None


def router(emu: Emulator) -> APIRouter:
    store = emu.store
    runtime = emu.runtime
    api = APIRouter(prefix="/_emulator", tags=["emulator admin (not data.gouv.fr)"])

    def check_org_input(data: OrganizationIn) -> None:
        if data.id is not None and not is_object_id(data.id):
            raise ApiError(400, {"message": "id must be 24 hexadecimal digits"})

    @api.get("/")
    async def index() -> dict[str, Any]:
        return {
            "emulator": "data.gouv.fr (udata 17 API subset)",
            "api": "/api/1/",
            "note": "/_emulator/ is the emulator's admin API; it is not part of data.gouv.fr.",
            "read_only": runtime.read_only,
            "allow_local_urls": runtime.allow_local_urls,
            "faults": runtime.faults.model_dump(),
        }

    # ----------------------------------------------------------------------------------------- identities

    @api.post("/provision")
    async def provision(request: Request) -> Response:
        data: ProvisionIn = _parse(ProvisionIn, await _body(request))
        check_org_input(data.organization)
        slug = data.organization.slug or reference.slugify(data.organization.name)
        with store.writing() as state:
            known = state.setdefault("provisioned", {}).get(slug)
            if known and known["organization_id"] in state["organizations"]:
                return JSONResponse({**known, "created": False})
            org = store.organization_by_slug(slug) or store.create_organization(
                name=data.organization.name, slug=slug, org_id=data.organization.id
            )
            if data.api_key:
                user, error = store.authenticate(data.api_key)
                if user is None:
                    raise ApiError(400, {"message": f"api_key cannot be reused: {error}"})
                api_key = data.api_key
            else:
                spec = data.user or UserIn(first_name="Broker", last_name=org["name"])
                user = store.create_user(
                    first_name=spec.first_name,
                    last_name=spec.last_name,
                    email=spec.email,
                    sysadmin=spec.sysadmin,
                )
                api_key = store.issue_token(user["id"], name="openig-broker")
            store.add_member(org["id"], user["id"], "admin")
            # The emulator keeps the provisioned key in clear so provisioning is idempotent across restarts.
            record = {
                "organization_id": org["id"],
                "organization_slug": org["slug"],
                "user_id": user["id"],
                "api_key": api_key,
            }
            state["provisioned"][slug] = record
        return JSONResponse({**record, "created": True}, status_code=201)

    @api.post("/organizations")
    async def create_organization(request: Request) -> Response:
        data: OrganizationIn = _parse(OrganizationIn, await _body(request))
        check_org_input(data)
        if data.id and data.id in store.state["organizations"]:
            raise ApiError(409, {"message": "organization id already exists"})
        org = store.create_organization(name=data.name, slug=data.slug, org_id=data.id)
        return JSONResponse(org, status_code=201)

    @api.get("/organizations")
    async def list_organizations() -> list[dict[str, Any]]:
        with store.lock:
            return list(store.state["organizations"].values())

    @api.post("/organizations/{org_id}/members")
    async def add_member(org_id: str, request: Request) -> Response:
        data: MemberIn = _parse(MemberIn, await _body(request))
        if org_id not in store.state["organizations"] or data.user_id not in store.state["users"]:
            raise ApiError(404, {"message": "unknown organization or user"})
        if data.role not in reference.ORG_ROLES:
            raise ApiError(400, {"message": f"role must be one of {', '.join(reference.ORG_ROLES)}"})
        store.add_member(org_id, data.user_id, data.role)
        return JSONResponse(store.state["organizations"][org_id])

    @api.post("/users")
    async def create_user(request: Request) -> Response:
        data: UserIn = _parse(UserIn, await _body(request))
        for membership in data.organizations:
            if membership.id not in store.state["organizations"]:
                raise ApiError(404, {"message": f"unknown organization {membership.id}"})
        user = store.create_user(
            first_name=data.first_name, last_name=data.last_name, email=data.email, sysadmin=data.sysadmin
        )
        for membership in data.organizations:
            store.add_member(membership.id, user["id"], membership.role)
        api_key = store.issue_token(user["id"])
        return JSONResponse({"user": user, "api_key": api_key}, status_code=201)

    @api.post("/users/{user_id}/tokens")
    async def issue_token(user_id: str) -> Response:
        if user_id not in store.state["users"]:
            raise ApiError(404, {"message": "unknown user"})
        return JSONResponse({"api_key": store.issue_token(user_id)}, status_code=201)

    @api.post("/tokens/revoke")
    async def revoke_token(request: Request) -> Response:
        data: TokenIn = _parse(TokenIn, await _body(request))
        if not store.revoke_token(data.api_key):
            raise ApiError(404, {"message": "unknown token"})
        return Response(status_code=204)

    # ----------------------------------------------------------------------------------------- state

    @api.get("/state")
    async def state_summary(request: Request) -> dict[str, Any]:
        with store.lock:
            datasets = list(store.state["datasets"].values())
            return {
                "organizations": len(store.state["organizations"]),
                "users": len(store.state["users"]),
                "datasets": len(datasets),
                "live_datasets": sum(1 for d in datasets if not d.get("deleted")),
                "deleted_datasets": sum(1 for d in datasets if d.get("deleted")),
                "resources": sum(len(d.get("resources") or []) for d in datasets),
                "pending_chunked_uploads": len(store.state["chunks"]),
                "read_only": runtime.read_only,
            }

    @api.get("/datasets")
    async def all_datasets(request: Request) -> list[dict[str, Any]]:
        org = request.query_params.get("organization")
        base = emu.base(request)
        with store.lock:
            return [
                serialize.dataset_out(store, d, base, None)
                for d in store.state["datasets"].values()
                if not org or d.get("organization") == org
            ]

    @api.post("/purge")
    async def purge() -> dict[str, int]:
        """Purge soft-deleted datasets, as data.gouv.fr does by the end of the day (research §2)."""
        with store.writing() as state:
            gone = [d for d in state["datasets"].values() if d.get("deleted")]
            for dataset in gone:
                for resource in dataset.get("resources") or []:
                    store.delete_resource_file(resource.get("fs_filename"))
                del state["datasets"][dataset["id"]]
            gone_ids = {d["id"] for d in gone}
            state["slug_redirects"] = {s: t for s, t in state["slug_redirects"].items() if t not in gone_ids}
        return {"purged": len(gone)}

    @api.post("/reset")
    async def reset() -> Response:
        store.reset()
        runtime.set_faults(FaultSettings())
        runtime.read_only = False
        with runtime.lock:
            runtime.log.clear()
        return Response(status_code=204)

    @api.post("/zones")
    async def add_zones(request: Request) -> dict[str, int]:
        raw = await _body(request)
        if not isinstance(raw, list):
            raise ApiError(400, {"message": "expecting a JSON list of {id, name}"})
        zones = [_parse(ZoneIn, item) for item in raw]
        with store.writing() as state:
            for zone in zones:
                geoid = reference.parse_geoid(zone.id)
                if geoid is None:
                    raise ApiError(400, {"message": f"Bad GeoID format: {zone.id}"})
                level, code = geoid.rsplit(":", 1)
                state["zones"].append({"id": geoid, "level": level, "code": code, "name": zone.name})
        return {"added": len(zones)}

    # ----------------------------------------------------------------------------------------- switches

    @api.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return runtime.faults.model_dump()

    @api.put("/faults")
    async def put_faults(request: Request) -> dict[str, Any]:
        settings: FaultSettings = _parse(FaultSettings, await _body(request))
        runtime.set_faults(settings)
        return settings.model_dump()

    @api.delete("/faults")
    async def clear_faults() -> Response:
        runtime.set_faults(FaultSettings())
        return Response(status_code=204)

    @api.get("/read-only")
    async def get_read_only() -> dict[str, bool]:
        return {"enabled": runtime.read_only}

    @api.put("/read-only")
    async def put_read_only(request: Request) -> dict[str, bool]:
        data: ReadOnlyIn = _parse(ReadOnlyIn, await _body(request))
        runtime.read_only = data.enabled
        return {"enabled": runtime.read_only}

    @api.get("/requests")
    async def requests_log(request: Request) -> list[dict[str, Any]]:
        since = int(request.query_params.get("since") or 0)
        with runtime.lock:
            return [entry for entry in runtime.log if entry["n"] > since]

    @api.delete("/requests")
    async def clear_requests() -> Response:
        with runtime.lock:
            runtime.log.clear()
        return Response(status_code=204)

    return api
