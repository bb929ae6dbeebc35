"""Validation of write payloads, as udata's WTForms (``DatasetForm``, ``ResourceForm``) and models do it.

Each ``clean_*`` function takes the JSON body and the current record (None on create) and returns the values
to apply, or raises :class:`ApiError` with udata's error body. Keys absent from the body keep the record's
value (research §2 "Update semantics"). Sources: udata ``core/dataset/forms.py``, ``forms/fields.py``,
``core/spatial/forms.py``, ``core/dataset/models.py`` ``Dataset.clean``, ``uris.py``.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from emulators.datagouv import reference
from emulators.datagouv.store import Record, Store, is_object_id

REQUIRED = "This field is required."
NOT_A_CHOICE = "Not a valid choice."  # WTForms 3 SelectField
TITLE_SIZE_LIMIT = 350
DESCRIPTION_SIZE_LIMIT = 100_000
DESCRIPTION_SHORT_SIZE_LIMIT = 200
TAG_MIN_LENGTH, TAG_MAX_LENGTH = 3, 96  # udata settings TAG_MIN_LENGTH / TAG_MAX_LENGTH
URL_SCHEMES = ("http", "https", "ftp", "ftps")  # URLS_ALLOWED_SCHEMES
# udata checks TLDs against URLS_ALLOWED_TLDS (the IANA list). The emulator only refuses the reserved and
# private-use names below. UNCONFIRMED: the exact production list.
_REFUSED_TLDS = {
    "local",
    "localdomain",
    "internal",
    "lan",
    "home",
    "corp",
    "test",
    "invalid",
    "example",
    "intranet",
}


class ApiError(Exception):
    """An HTTP error with udata's body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def form_errors(errors: dict[str, Any]) -> ApiError:
    """``api.validate`` on a failed form: only ``errors`` is set (research §2 "Error body shapes")."""
    return ApiError(400, {"errors": errors})


def model_error(errors: dict[str, Any], message: str) -> ApiError:
    """A MongoEngine ``ValidationError`` at save time: ``errors`` and ``message`` (udata api/__init__.py)."""
    return ApiError(400, {"errors": errors, "message": message})


def value_error(message: str) -> ApiError:
    """udata's ``ValueError`` handler: ``{"message": str(error)}``."""
    return ApiError(400, {"message": message})


# --------------------------------------------------------------------------------------------- fields


def _length(value: str, limit: int) -> str | None:
    return f"Field cannot be longer than {limit} characters." if len(value) > limit else None


def _required_text(
    body: dict[str, Any], key: str, current: Record | None, limit: int
) -> tuple[Any, str | None]:
    value = body[key] if key in body else (current or {}).get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, REQUIRED
    text = str(value)
    return text, _length(text, limit)


def _parse_datetime(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("Not a valid datetime value.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("Not a valid datetime value.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        # dateutil's message, as udata DateRangeField lets it through.
        raise ValueError(f"Unknown string format: {text}") from None


def clean_temporal(value: Any) -> dict[str, str | None] | None:
    """udata ``DateRangeField``: ``{"start", "end"}`` or ``"start - end"``; stored as dates."""
    if not value:
        return None
    if isinstance(value, str):
        if " - " not in value:
            raise ValueError("Unable to parse date range")
        head, tail = value.split(" - ", 1)
        end_date = _parse_date(tail).isoformat() if tail else None
        return {"start": _parse_date(head).isoformat(), "end": end_date}
    if isinstance(value, dict) and "start" in value:
        if not isinstance(value["start"], str):
            raise ValueError("Date must be a string")
        end = value.get("end")
        if end and not isinstance(end, str):
            raise ValueError("Date must be a string")
        return {
            "start": _parse_date(value["start"]).isoformat(),
            "end": _parse_date(end).isoformat() if end else None,
        }
    raise ValueError("Unable to parse date range")


def clean_tags(value: Any) -> tuple[list[str], str | None]:
    """udata ``TagField``: one value is split on commas (deduplicated), several are slugified one by one."""
    if value is None:
        return [], None
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    if len(values) > 1:
        tags = [reference.tag_slug(v) for v in values]
    elif values:
        tags = sorted({reference.tag_slug(t) for t in values[0].split(",") if t.strip()})
    else:
        tags = []
    for tag in tags:
        if not TAG_MIN_LENGTH <= len(tag) <= TAG_MAX_LENGTH:
            return tags, f'Tag "{tag}" must be between {TAG_MIN_LENGTH} and {TAG_MAX_LENGTH} characters long.'
    return tags, None


def clean_bool(value: Any) -> bool:
    """WTForms ``BooleanField`` fed JSON: null, false, "false" and "" are False (research §2)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "off")
    return bool(value)


def validate_url(url: str, *, allow_local: bool) -> str | None:
    """udata ``uris.validate`` with the default settings; returns the error message or None.

    ``allow_local`` stands for ``URLS_ALLOW_LOCAL`` and ``URLS_ALLOW_PRIVATE`` both True.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f'Invalid URL "{url}"'
    if not parts.netloc or not host:
        return f'Invalid URL "{url}"'
    scheme = parts.scheme.lower()
    if scheme and scheme not in URL_SCHEMES:
        return f'Invalid URL "{url}": Invalid scheme {scheme}, allowed schemes: {", ".join(URL_SCHEMES)}'
    if parts.username or parts.password:
        return f'Invalid URL "{url}": Credentials in URL are not allowed'
    host = host.lower()
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None:
        if host in ("localhost", "localhost.localdomain"):
            return None if allow_local else f'Invalid URL "{url}": is a local URL'
        if "." not in host:
            # URL_REGEX needs a TLD on a host name: a bare name does not match at all.
            return None if allow_local else f'Invalid URL "{url}"'
        tld = host.rsplit(".", 1)[-1]
        if tld in _REFUSED_TLDS and not allow_local:
            return f'Invalid URL "{url}": Invalid TLD {tld}'
        return None
    if ip.is_multicast:
        return f'Invalid URL "{url}": {ip} is a multicast IP'
    if allow_local:
        return None
    if ip.is_loopback:
        return f'Invalid URL "{url}": is a local URL'
    if ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified:
        return f'Invalid URL "{url}": is a private URL'
    return None


# --------------------------------------------------------------------------------------------- spatial


def _valid_ring(ring: Any) -> bool:
    return (
        isinstance(ring, list)
        and len(ring) >= 4
        and all(
            isinstance(p, list) and len(p) >= 2 and all(isinstance(c, int | float) for c in p) for p in ring
        )
        and ring[0] == ring[-1]
    )


def _valid_multipolygon(geom: Any) -> bool:
    if not isinstance(geom, dict) or geom.get("type") != "MultiPolygon":
        return False
    coords = geom.get("coordinates")
    return (
        isinstance(coords, list)
        and bool(coords)
        and all(isinstance(poly, list) and poly and all(_valid_ring(r) for r in poly) for poly in coords)
    )


def clean_spatial(store: Store, value: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """udata ``SpatialCoverageForm``: ``zones`` resolved by geoid, ``granularity``, ``geom`` GeoJSON."""
    if value is None:
        return None, {}
    if not isinstance(value, dict):
        return None, {"spatial": ["Not a valid GeoJSON"]}
    errors: dict[str, list[str]] = {}
    zones_in = value.get("zones") or []
    if isinstance(zones_in, str):
        zones_in = [z for z in zones_in.split(",") if z]
    table = store.zones()
    zones: list[str] = []
    unknown: list[str] = []
    for item in zones_in:
        raw = item.get("id") if isinstance(item, dict) else item
        geoid = reference.parse_geoid(str(raw)) if raw is not None else None
        if geoid is None or geoid not in table:
            unknown.append(str(raw))
        else:
            zones.append(geoid)
    if unknown:
        errors["zones"] = [f"Unknown geoid(s): {', '.join(unknown)}"]
    granularity = value.get("granularity") or "other"
    if granularity not in reference.GRANULARITY_IDS:
        errors["granularity"] = [NOT_A_CHOICE]
    geom = value.get("geom")
    if geom is not None and not _valid_multipolygon(geom):
        # GeomField accepts any GeoJSON, the model field only a MultiPolygon: both end as a 400 on spatial.
        errors["geom"] = ["Not a valid GeoJSON"]
    if errors:
        return None, errors
    return {"zones": zones, "granularity": granularity, "geom": geom}, {}


# --------------------------------------------------------------------------------------------- resources


def clean_resource(
    body: dict[str, Any], current: Record | None, *, allow_local: bool, hosted_protected: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """udata ``BaseResourceForm``: returns (values, errors). Absent keys keep ``current``'s values."""
    base = dict(current or {})
    errors: dict[str, Any] = {}
    values: dict[str, Any] = {}

    title, err = _required_text(body, "title", current, TITLE_SIZE_LIMIT)
    if err:
        errors["title"] = [err]
    values["title"] = title
    description = body.get("description", base.get("description")) or ""
    if (err := _length(str(description), DESCRIPTION_SIZE_LIMIT)) is not None:
        errors["description"] = [err]
    values["description"] = str(description)

    filetype = body.get("filetype") or base.get("filetype") or "file"
    if filetype not in reference.RESOURCE_FILETYPES:
        errors["filetype"] = [NOT_A_CHOICE]
    values["filetype"] = filetype
    rtype = body.get("type") or base.get("type") or "other"  # form default "other" (research §3)
    if rtype not in reference.RESOURCE_TYPE_IDS:
        errors["type"] = [NOT_A_CHOICE]
    values["type"] = rtype

    url = body.get("url", base.get("url"))
    if not url:
        errors["url"] = [REQUIRED]
    elif (err := validate_url(str(url), allow_local=allow_local)) is not None:
        errors["url"] = [err]
    values["url"] = str(url).strip() if url else None

    fmt = body.get("format", base.get("format"))
    values["format"] = fmt.strip().lower() if isinstance(fmt, str) and fmt.strip() else None
    values["mime"] = body.get("mime", base.get("mime"))
    filesize = body.get("filesize", base.get("filesize"))
    if filesize is not None and not isinstance(filesize, int):
        try:
            filesize = int(filesize)
        except (TypeError, ValueError):
            errors["filesize"] = ["Not a valid integer value."]
    values["filesize"] = filesize

    checksum = body.get("checksum", base.get("checksum"))
    if checksum is not None:
        if not isinstance(checksum, dict):
            errors["checksum"] = ["Unsupported data type"]
        else:
            ctype = checksum.get("type") or "sha1"
            sub: dict[str, list[str]] = {}
            if ctype not in reference.CHECKSUM_TYPES:
                sub["type"] = [NOT_A_CHOICE]
            if not checksum.get("value"):
                sub["value"] = [REQUIRED]
            if sub:
                errors["checksum"] = sub
            checksum = {"type": ctype, "value": checksum.get("value")}
    values["checksum"] = checksum

    extras = body.get("extras", base.get("extras")) or {}
    if not isinstance(extras, dict):
        errors["extras"] = ["Unsupported data type"]
        extras = {}
    values["extras"] = extras
    schema = body.get("schema", base.get("schema"))
    if schema is not None and not isinstance(schema, dict):
        errors["schema"] = ["Unsupported data type"]
    # UNCONFIRMED in the emulator: the schema catalogue (schema.data.gouv.fr) is not checked (research §6).
    values["schema"] = schema

    if current is not None and hosted_protected and current.get("filetype") == "file" and current.get("url"):
        # HOSTED_RESOURCE_PROTECTED_FIELDS: a hosted file's server-computed fields ignore client values.
        for name in ("filetype", "url", "checksum", "filesize", "mime", "format"):
            values[name] = current.get(name)
            errors.pop(name, None)
    return values, errors


# --------------------------------------------------------------------------------------------- datasets


def _resolve_org(store: Store, raw: Any) -> tuple[Record | None, str | None]:
    oid = raw.get("id") if isinstance(raw, dict) else raw
    if oid is None or oid == "":
        return None, None
    if not isinstance(oid, str) or not is_object_id(oid):
        return None, f"Unsupported identifier: {oid}"
    org = store.state["organizations"].get(oid)
    if org is None:
        # UNCONFIRMED: the exact wording of udata's ModelFieldMixin for a well-formed unknown id.
        return None, f"Unknown reference: {oid}"
    return org, None


def clean_frequency(value: Any) -> str:
    """udata ``unmarshal_frequency``: ``UpdateFrequency(value)`` raises ValueError -> 400 ``{"message"}``."""
    if value is None or value == "":
        return "unknown"
    text = str(value)
    text = reference.LEGACY_FREQUENCIES.get(text, text)
    if text not in reference.FREQUENCY_IDS:
        raise value_error(f"'{value}' is not a valid UpdateFrequency")
    return text


def clean_dataset(
    store: Store, body: dict[str, Any], current: Record | None, *, user: Record, allow_local: bool
) -> dict[str, Any]:
    """Validate a create (``current`` None) or update body; return the changes to apply."""
    # The frequency's ValueError escapes the form as a plain 400 message, before field errors are collected.
    changes: dict[str, Any] = {}
    if "frequency" in body or current is None:
        changes["frequency"] = clean_frequency(body.get("frequency"))

    errors: dict[str, Any] = {}
    for key, limit in (("title", TITLE_SIZE_LIMIT), ("description", DESCRIPTION_SIZE_LIMIT)):
        value, err = _required_text(body, key, current, limit)
        if err:
            errors[key] = [err]
        elif key in body or current is None:
            changes[key] = value
    for key, limit in (("description_short", DESCRIPTION_SHORT_SIZE_LIMIT), ("acronym", 128)):
        if key in body:
            value = body[key]
            if value is not None and (err := _length(str(value), limit)):
                errors[key] = [err]
            changes[key] = value

    if "license" in body:
        lic = body["license"]
        if lic in (None, ""):
            changes["license"] = None
        elif lic not in reference.LICENSE_IDS:
            errors["license"] = ["Not a valid choice"]  # udata flask_mongoengine ModelSelectField
        else:
            changes["license"] = lic

    if "access_type" in body:
        access = body["access_type"] or "open"
        if access not in reference.ACCESS_TYPES:
            errors["access_type"] = [NOT_A_CHOICE]
        changes["access_type"] = access
    elif current is None:
        changes["access_type"] = "open"
    for key in ("authorization_request_url", "access_type_reason"):
        if key in body:
            changes[key] = body[key]
    if "access_type_reason_category" in body:
        category = body["access_type_reason_category"]
        if category not in (None, "") and category not in reference.ACCESS_REASON_CATEGORIES:
            errors["access_type_reason_category"] = [NOT_A_CHOICE]
        changes["access_type_reason_category"] = category or None
    if "access_audiences" in body:
        changes["access_audiences"] = list(body["access_audiences"] or [])

    for key in ("frequency_date", "deleted", "archived"):
        if key in body:
            try:
                changes[key] = _parse_datetime(body[key])
            except ValueError as exc:
                errors[key] = [str(exc)]

    if "temporal_coverage" in body:
        try:
            changes["temporal_coverage"] = clean_temporal(body["temporal_coverage"])
        except ValueError as exc:
            errors["temporal_coverage"] = [str(exc)]

    if "spatial" in body:
        spatial, spatial_errors = clean_spatial(store, body["spatial"])
        if spatial_errors:
            errors["spatial"] = spatial_errors
        changes["spatial"] = spatial

    if "tags" in body:
        tags, err = clean_tags(body["tags"])
        if err:
            errors["tags"] = [err]
        changes["tags"] = tags
    elif current is None:
        changes["tags"] = []

    if "private" in body:
        changes["private"] = clean_bool(body["private"])
    elif current is None:
        changes["private"] = False

    if "extras" in body:
        extras = body["extras"]
        if not isinstance(extras, dict):
            errors["extras"] = ["Unsupported data type"]
        else:
            changes["extras"] = dict(extras)
    elif current is None:
        changes["extras"] = {}

    _clean_owner(store, body, current, user, changes, errors)
    _clean_contact_points(store, body, current, changes, errors)
    _clean_inline_resources(body, current, changes, errors, allow_local=allow_local)

    if errors:
        raise form_errors(errors)
    model_checks(store, current, changes)
    return changes


def _clean_owner(
    store: Store,
    body: dict[str, Any],
    current: Record | None,
    user: Record,
    changes: dict[str, Any],
    errors: dict[str, Any],
) -> None:
    """udata ``PublishAsField`` / ``CurrentUserField`` (research §1 "Ownership and permissions")."""
    if "organization" in body and body["organization"] not in (None, ""):
        org, err = _resolve_org(store, body["organization"])
        if err:
            errors["organization"] = [err]
            return
        assert org is not None
        if current is not None and current.get("organization") != org["id"] and not user.get("sysadmin"):
            errors["organization"] = ["Cannot change owner after creation. Please use transfer feature."]
            return
        if not user.get("sysadmin") and store.role_in(org["id"], user) is None:
            errors["organization"] = ["Permission denied for this organization"]
            return
        changes["organization"] = org["id"]
        changes["owner"] = None
    elif current is None:
        changes["organization"] = None
        changes["owner"] = user["id"]


def _clean_contact_points(
    store: Store,
    body: dict[str, Any],
    current: Record | None,
    changes: dict[str, Any],
    errors: dict[str, Any],
) -> None:
    if "contact_points" not in body:
        if current is None:
            changes["contact_points"] = []
        return
    raw = body["contact_points"]
    if raw is None:
        changes["contact_points"] = []  # null clears them
        return
    if not raw:
        # udata quirk (test_dataset_api_update_contact_point): `[]` does NOT clear them (research §2).
        return
    ids = [item.get("id") if isinstance(item, dict) else item for item in raw]
    unknown = [str(i) for i in ids if i not in store.state["contact_points"]]
    if unknown:
        errors["contact_points"] = [f"Unknown identifiers: {', '.join(unknown)}"]
        return
    org_id = changes.get("organization", (current or {}).get("organization"))
    owner_id = changes.get("owner", (current or {}).get("owner"))
    for cid in ids:
        point = store.state["contact_points"][cid]
        if (org_id and point.get("organization") != org_id) or (
            not org_id and point.get("owner") != owner_id
        ):
            errors["contact_points"] = ["Wrong contact point id or contact point ownership mismatch"]
            return
    changes["contact_points"] = ids


def _clean_inline_resources(
    body: dict[str, Any],
    current: Record | None,
    changes: dict[str, Any],
    errors: dict[str, Any],
    *,
    allow_local: bool,
) -> None:
    """``resources`` replaces the list: known ids are updated in place, others get a new id (research §2)."""
    if "resources" not in body:
        return
    raw = body["resources"]
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        errors["resources"] = ["Unsupported data type"]
        return
    existing = {r["id"]: r for r in (current or {}).get("resources", [])}
    cleaned: list[tuple[str | None, dict[str, Any]]] = []
    nested: dict[str, Any] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            nested[str(index)] = ["Unsupported data type"]
            continue
        rid = item.get("id")
        known = existing.get(rid) if isinstance(rid, str) else None
        values, item_errors = clean_resource(item, known, allow_local=allow_local)
        if item_errors:
            nested[str(index)] = item_errors
        cleaned.append((rid if known else None, values))
    if nested:
        errors["resources"] = nested
        return
    changes["resources"] = cleaned


def model_checks(store: Store, current: Record | None, changes: dict[str, Any]) -> None:
    """``Dataset.clean`` / MongoEngine validation run at save time (400 with ``errors`` and ``message``)."""
    spatial = changes.get("spatial")
    if spatial and spatial.get("zones") and spatial.get("geom"):
        message = "The spatial coverage cannot contains a Geozone and a Geometry"
        # Inferred from MongoEngine: an embedded document's clean() error lands under __all__ of its field.
        raise model_error(
            {"spatial": {"__all__": message}}, f"ValidationError (Dataset) ({message}: ['spatial'])"
        )
    extras = changes.get("extras")
    if extras:
        for key in extras:
            if key.startswith("$") or "." in key:
                message = 'Invalid dictionary key name - keys may not startswith "$" or contain "."'
                raise model_error({"extras": message}, f"ValidationError (Dataset) ({message}: ['extras'])")
            if key.startswith("custom:"):
                org_id = changes.get("organization", (current or {}).get("organization"))
                message = (
                    "Custom metadatas are only accessible to dataset owned by on organization."
                    if not org_id
                    else "Dataset's organization did not define the requested custom metadata."
                )
                # UNCONFIRMED: custom metadata declared by organizations are not emulated; all are refused.
                raise model_error({}, message)
