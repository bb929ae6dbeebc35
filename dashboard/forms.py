"""The *Publier* form as data: from what a producer typed to a manifest, and API field errors back to fields.

Pure functions, tested directly; the page only draws widgets around them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

#: The form's fields, in the order they are drawn; API error paths are matched on their first segment.
FORM_FIELDS = (
    "organization",
    "title",
    "description",
    "license",
    "frequency",
    "keywords",
    "temporal",
    "contact",
    "access",
    "restricted_to",
    "services",
    "portals",
    "resources",
)


def split_list(text: str | None) -> list[str]:
    """Comma- or line-separated words, trimmed, without duplicates (order kept)."""
    out: list[str] = []
    for chunk in (text or "").replace("\n", ",").split(","):
        word = chunk.strip()
        if word and word not in out:
            out.append(word)
    return out


@dataclass
class PublishForm:
    """What the producer entered on the *Publier* page."""

    organization: str = ""
    title: str = ""
    description: str = ""
    license: str | None = "lov2"
    frequency: str | None = None
    keywords: str = ""
    temporal_start: date | None = None
    temporal_end: date | None = None
    contact_name: str = ""
    contact_email: str = ""
    access: str = "open"
    restricted_users: str = ""
    restricted_organizations: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    portals: str = ""
    file_names: list[str] = field(default_factory=list)
    urls: str = ""
    url_sync: str | None = None


def build_manifest(form: PublishForm) -> dict[str, Any]:
    """The manifest (same schema as the API, CLI and SFTP) for this form; empty optional parts are left out.

    Nothing is validated here: the API validates and answers field errors, which the page shows next to the
    fields, so the rules live in one place.
    """
    manifest: dict[str, Any] = {
        "organization": form.organization,
        "title": form.title.strip(),
        "description": form.description.strip(),
    }
    if form.license:
        manifest["license"] = form.license
    if form.frequency:
        manifest["frequency"] = form.frequency
    keywords = split_list(form.keywords)
    if keywords:
        manifest["keywords"] = keywords
    temporal = {}
    if form.temporal_start:
        temporal["start"] = form.temporal_start.isoformat()
    if form.temporal_end:
        temporal["end"] = form.temporal_end.isoformat()
    if temporal:
        manifest["temporal"] = temporal
    contact = {}
    if form.contact_name.strip():
        contact["name"] = form.contact_name.strip()
    if form.contact_email.strip():
        contact["email"] = form.contact_email.strip()
    if contact:
        manifest["contact"] = contact
    manifest["access"] = form.access
    if form.access == "restricted":
        manifest["restricted_to"] = {
            "users": split_list(form.restricted_users),
            "organizations": list(dict.fromkeys(form.restricted_organizations)),
        }
    if form.services:
        manifest["services"] = list(dict.fromkeys(form.services))
    portals = split_list(form.portals)
    if portals:
        manifest["portals"] = portals
    resources: list[dict[str, Any]] = [{"file": name, "title": name} for name in form.file_names]
    for url in split_list(form.urls):
        resource: dict[str, Any] = {"url": url}
        if form.url_sync:
            resource["sync"] = form.url_sync
        resources.append(resource)
    manifest["resources"] = resources
    return manifest


def fingerprint(manifest: Mapping[str, Any], files: Iterable[tuple[str, bytes, str]]) -> str:
    """A digest of exactly what would be sent: the confirmation publishes only what was previewed."""
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode())
    for name, content, _ in files:
        digest.update(name.encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def errors_by_field(fields: Mapping[str, Sequence[str]]) -> tuple[dict[str, list[str]], list[str]]:
    """API field errors grouped by form field (``contact.email`` goes under ``contact``).

    Returns (per form field: messages, messages of paths no field shows). A message under a nested path
    keeps the rest of the path in front (``email : …``), so the producer sees which part is wrong.
    """
    grouped: dict[str, list[str]] = {}
    orphans: list[str] = []
    for path, messages in fields.items():
        head, _, rest = str(path).partition(".")
        if head == "files":
            head, rest = "resources", rest
        for message in messages:
            text = f"{_readable_path(rest)} : {message}" if rest else str(message)
            if head in FORM_FIELDS:
                grouped.setdefault(head, []).append(text)
            else:
                orphans.append(f"{path} : {message}")
    return grouped, orphans


_PATH_WORDS = {
    "start": "début",
    "end": "fin",
    "email": "adresse électronique",
    "name": "nom",
    "users": "personnes",
    "organizations": "organisations",
    "file": "fichier",
    "url": "adresse",
    "sync": "synchronisation",
    "title": "titre",
}


def _readable_path(rest: str) -> str:
    """``0.file`` → ``n° 1 · fichier``: positions counted from 1 as people do."""
    words = []
    for part in rest.split("."):
        if part.isdigit():
            words.append(f"n° {int(part) + 1}")
        else:
            words.append(_PATH_WORDS.get(part, part))
    return " · ".join(words)
