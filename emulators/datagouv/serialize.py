"""Output shapes of the emulator: udata's ``dataset_fields``, ``resource_fields``, pages, ``X-Fields``."""

from __future__ import annotations

from typing import Any

from emulators.datagouv import reference
from emulators.datagouv.store import Record, Store

QUALITY_DESCRIPTION_LENGTH = 100  # udata settings default
QUALITY_MAX_SCORE = 9  # udata Dataset.normalize_score


def _date_as_datetime(value: str | None) -> str | None:
    # Temporal coverage is stored as dates but marshalled with fields.ISODateTime.
    return f"{value}T00:00:00+00:00" if value else None


def org_ref(org: Record | None, base: str) -> dict[str, Any] | None:
    if org is None:
        return None
    return {
        "id": org["id"],
        "name": org["name"],
        "acronym": org.get("acronym"),
        "slug": org["slug"],
        "uri": f"{base}/api/1/organizations/{org['slug']}/",
        "page": f"{base}/organizations/{org['slug']}/",
        "logo": None,
        "logo_thumbnail": None,
        "badges": [],
        "class": "Organization",
    }


def user_ref(user: Record | None, base: str) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user["id"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "slug": user["slug"],
        "uri": f"{base}/api/1/users/{user['slug']}/",
        "page": f"{base}/users/{user['slug']}/",
        "avatar": None,
        "avatar_thumbnail": None,
        "class": "User",
    }


def resource_out(resource: Record, base: str) -> dict[str, Any]:
    return {
        "id": resource["id"],
        "title": resource["title"],
        "description": resource.get("description") or "",
        "filetype": resource["filetype"],
        "type": resource["type"],
        "format": resource.get("format"),
        "url": resource["url"],
        "latest": f"{base}/api/1/datasets/r/{resource['id']}",
        "checksum": resource.get("checksum"),
        "filesize": resource.get("filesize"),
        "mime": resource.get("mime"),
        "created_at": resource["created_at"],
        "last_modified": resource["last_modified"],
        "metrics": {"views": 0},
        "harvest": None,
        "extras": dict(resource.get("extras") or {}),
        "preview_url": None,
        "schema": resource.get("schema"),
        "internal": {
            "created_at_internal": resource["created_at"],
            "last_modified_internal": resource["last_modified"],
        },
    }


def quality(dataset: Record) -> dict[str, Any]:
    """udata ``Dataset.compute_quality`` and ``compute_quality_score`` (without the time-sensitive part)."""
    result: dict[str, Any] = {
        "license": bool(dataset.get("license")),
        "temporal_coverage": bool(dataset.get("temporal_coverage")),
        "spatial": bool(dataset.get("spatial")),
        "update_frequency": dataset.get("frequency") not in (None, "unknown"),
        "dataset_description_quality": len(dataset.get("description") or "") > QUALITY_DESCRIPTION_LENGTH,
    }
    resources = dataset.get("resources") or []
    if resources:
        result["has_resources"] = True
        result["has_open_format"] = not all(
            not r.get("format") or r["format"].lower() in reference.CLOSED_FORMATS for r in resources
        )
        result["all_resources_available"] = True
        result["resources_documentation"] = any(
            r.get("type") == "documentation" or r.get("description") for r in resources
        )
    score = sum(1 for key, value in result.items() if value is True and key != "has_resources")
    result["score"] = round(score / QUALITY_MAX_SCORE, 2)
    return result


def dataset_out(store: Store, dataset: Record, base: str, user: Record | None) -> dict[str, Any]:
    org = store.state["organizations"].get(dataset.get("organization") or "")
    owner = store.state["users"].get(dataset.get("owner") or "")
    temporal = dataset.get("temporal_coverage")
    can_edit = can_edit_dataset(store, dataset, user)
    return {
        "id": dataset["id"],
        "title": dataset["title"],
        "acronym": dataset.get("acronym"),
        "slug": dataset["slug"],
        "description": dataset["description"],
        "description_short": dataset.get("description_short"),
        "created_at": dataset["created_at"],
        "last_modified": dataset["last_modified"],
        "last_update": dataset["last_modified"],
        "deleted": dataset.get("deleted"),
        "archived": dataset.get("archived"),
        "featured": dataset.get("featured", False),
        "private": dataset.get("private", False),
        "tags": list(dataset.get("tags") or []),
        "badges": [],
        "resources": [resource_out(r, base) for r in dataset.get("resources") or []],
        "community_resources": [],
        "frequency": dataset.get("frequency") or "unknown",
        "frequency_date": dataset.get("frequency_date"),
        "harvest": None,
        "extras": dict(dataset.get("extras") or {}),
        "metrics": {"discussions": 0, "followers": 0, "reuses": 0, "views": 0, "resources_downloads": 0},
        "organization": org_ref(org, base),
        "owner": user_ref(owner, base),
        "temporal_coverage": (
            {"start": _date_as_datetime(temporal.get("start")), "end": _date_as_datetime(temporal.get("end"))}
            if temporal
            else None
        ),
        "spatial": dataset.get("spatial"),
        # A dataset without licence serialises as "notspecified" (research §2).
        "license": dataset.get("license") or "notspecified",
        "access_type": dataset.get("access_type") or "open",
        "access_audiences": list(dataset.get("access_audiences") or []),
        "authorization_request_url": dataset.get("authorization_request_url"),
        "access_type_reason_category": dataset.get("access_type_reason_category"),
        "access_type_reason": dataset.get("access_type_reason"),
        "uri": f"{base}/api/1/datasets/{dataset['slug']}/",
        "page": f"{base}/datasets/{dataset['slug']}/",
        "quality": quality(dataset),
        "schema": None,
        "internal": {
            "created_at_internal": dataset["created_at"],
            "last_modified_internal": dataset["last_modified"],
        },
        "contact_points": [
            contact_out(store.state["contact_points"][cid])
            for cid in dataset.get("contact_points") or []
            if cid in store.state["contact_points"]
        ],
        "permissions": {
            "delete": can_edit,
            "edit": can_edit,
            "edit_resources": can_edit,
            "read": can_read_dataset(store, dataset, user),
        },
    }


def contact_out(point: Record) -> dict[str, Any]:
    return {
        "id": point["id"],
        "name": point["name"],
        "email": point.get("email"),
        "contact_form": point.get("contact_form"),
        "role": point["role"],
    }


def page(items: list[Any], page_number: int, page_size: int, total: int, url: str) -> dict[str, Any]:
    """udata's ``fields.pager``: ``{data, page, page_size, total, next_page, previous_page}``."""
    sep = "&" if "?" in url else "?"
    has_next = page_number * page_size < total
    return {
        "data": items,
        "page": page_number,
        "page_size": page_size,
        "total": total,
        "next_page": f"{url}{sep}page={page_number + 1}&page_size={page_size}" if has_next else None,
        "previous_page": f"{url}{sep}page={page_number - 1}&page_size={page_size}"
        if page_number > 1
        else None,
    }


# --------------------------------------------------------------------------------------------- permissions


def can_edit_dataset(store: Store, dataset: Record, user: Record | None) -> bool:
    """udata ``DatasetEditPermission``: owner, admin/editor of the owning organization, or a sysadmin."""
    if user is None:
        return False
    if user.get("sysadmin"):
        return True
    if dataset.get("owner") and dataset["owner"] == user["id"]:
        return True
    # Partial editors may only edit objects assigned to them; assignments are not emulated (UNCONFIRMED).
    return store.role_in(dataset.get("organization"), user) in ("admin", "editor")


def can_read_dataset(store: Store, dataset: Record, user: Record | None) -> bool:
    """Public datasets for everyone; private or deleted ones for the owner, any member, or a sysadmin."""
    if not dataset.get("private") and not dataset.get("deleted"):
        return True
    if user is None:
        return False
    if user.get("sysadmin") or dataset.get("owner") == user["id"]:
        return True
    return store.role_in(dataset.get("organization"), user) is not None


# --------------------------------------------------------------------------------------------- X-Fields


def parse_mask(text: str) -> dict[str, Any]:
    """flask-restx ``X-Fields`` mask: ``a,b{c,d{e}}`` -> ``{"a": {}, "b": {"c": {}, "d": {"e": {}}}}``."""
    root: dict[str, Any] = {}
    stack = [root]
    token = ""
    last: str | None = None
    for char in text.replace(" ", ""):
        if char in ",{}":
            if token:
                stack[-1][token] = {}
                last = token
                token = ""
            if char == "{":
                if last is None:
                    raise ValueError("bad mask")
                stack.append(stack[-1][last])
                last = None
            elif char == "}":
                if len(stack) == 1:
                    raise ValueError("bad mask")
                stack.pop()
        else:
            token += char
    if token:
        stack[-1][token] = {}
    if len(stack) != 1:
        raise ValueError("bad mask")
    return root


def apply_mask(value: Any, mask: dict[str, Any]) -> Any:
    if not mask:
        return value
    if isinstance(value, list):
        return [apply_mask(item, mask) for item in value]
    if isinstance(value, dict):
        return {key: apply_mask(value[key], sub) for key, sub in mask.items() if key in value}
    return value
