"""The emulator's state: users and API tokens, organizations, datasets, contact points, stored files.

Everything is kept in plain JSON-able dicts behind one lock. With a ``state_dir`` the state is written to
``state_dir/state.json`` after every change (atomic replace) and files live under ``state_dir/files``, so a
restart keeps everything; without it files go to a private temporary directory removed at exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulators.datagouv import reference

logger = logging.getLogger(__name__)

# udata 16+ API tokens are opaque strings with this prefix (API_TOKEN_PREFIX, research §1).
TOKEN_PREFIX = "udata_"

Record = dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None = None) -> str:
    return (value or now()).isoformat()


def object_id() -> str:
    """A MongoDB-like ObjectId: 24 hex digits (datasets, organizations, users, contact points)."""
    return secrets.token_hex(12)


def is_object_id(value: str) -> bool:
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value.lower())


def token_digest(token: str) -> str:
    # udata stores only an HMAC of the token (research §1); a plain digest is enough for an emulator.
    return hashlib.sha256(token.encode()).hexdigest()


def _empty_state() -> dict[str, Any]:
    return {
        "users": {},
        "tokens": {},
        "organizations": {},
        "datasets": {},
        "slug_redirects": {},
        "contact_points": {},
        "chunks": {},
        "zones": [],
        "provisioned": {},
    }


class FileExists(Exception):
    """flask-storage's ``FileExists``: the storage key is already taken (udata answers 500)."""


class Store:
    SAVE_DELAY = 0.2

    def __init__(self, state_dir: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.files_dir = self.state_dir / "files"
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="datagouv-emulator-")
            self.files_dir = Path(self._tmp.name)
        (self.files_dir / "resources").mkdir(parents=True, exist_ok=True)
        (self.files_dir / "chunks").mkdir(parents=True, exist_ok=True)
        self.state = _empty_state()
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._load()

    # ----------------------------------------------------------------------------------------- persistence

    @property
    def state_file(self) -> Path | None:
        return self.state_dir / "state.json" if self.state_dir is not None else None

    def _load(self) -> None:
        path = self.state_file
        if path is None or not path.is_file():
            return
        loaded = json.loads(path.read_text(encoding="utf-8"))
        state = _empty_state()
        state.update(loaded)
        self.state = state
        logger.info("data.gouv.fr emulator: state loaded from %s", path)

    def save(self) -> None:
        """Schedule a write of the state (no-op without a state directory).

        Writes are coalesced: at most one every ``SAVE_DELAY`` seconds, and :meth:`close` (the server's
        shutdown) writes whatever is pending, so a clean restart loses nothing.
        """
        if self.state_file is None:
            return
        with self.lock:
            self._dirty = True
            if self._timer is None:
                self._timer = threading.Timer(self.SAVE_DELAY, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the state now if it changed (atomic replace of state.json)."""
        path = self.state_file
        if path is None:
            return
        with self.lock:
            self._timer = None
            if not self._dirty:
                return
            text = json.dumps(self.state, ensure_ascii=False, default=str)
            self._dirty = False
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    @contextlib.contextmanager
    def writing(self) -> Iterator[dict[str, Any]]:
        """Hold the lock for a change and persist it afterwards."""
        with self.lock:
            yield self.state
            self.save()

    def reset(self) -> None:
        with self.writing():
            self.state.clear()
            self.state.update(_empty_state())
            for folder in ("resources", "chunks"):
                shutil.rmtree(self.files_dir / folder, ignore_errors=True)
                (self.files_dir / folder).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
        self.flush()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ----------------------------------------------------------------------------------------- users

    def create_user(
        self,
        *,
        first_name: str = "Emulated",
        last_name: str = "User",
        email: str | None = None,
        sysadmin: bool = False,
        user_id: str | None = None,
    ) -> Record:
        with self.writing() as state:
            uid = user_id or object_id()
            user = {
                "id": uid,
                "first_name": first_name,
                "last_name": last_name,
                "email": email or f"user-{uid[:8]}@example.org",
                "slug": reference.slugify(f"{first_name} {last_name}") or uid,
                "sysadmin": sysadmin,
                "deleted": False,
                "active": True,
                "created_at": iso(),
            }
            state["users"][uid] = user
            return user

    def issue_token(self, user_id: str, name: str = "emulator") -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.writing() as state:
            state["tokens"][token_digest(token)] = {
                "user": user_id,
                "name": name,
                "revoked": False,
                "created_at": iso(),
            }
        return token

    def revoke_token(self, token: str) -> bool:
        with self.writing() as state:
            entry = state["tokens"].get(token_digest(token))
            if entry is None:
                return False
            entry["revoked"] = True
            return True

    def authenticate(self, token: str) -> tuple[Record | None, str | None]:
        """(user, error): error is ``invalid``, ``revoked`` or ``inactive`` (udata ApiToken.authenticate)."""
        with self.lock:
            entry = self.state["tokens"].get(token_digest(token))
            if entry is None:
                return None, "invalid"
            if entry["revoked"]:
                return None, "revoked"
            user = self.state["users"].get(entry["user"])
            if user is None or user.get("deleted") or not user.get("active", True):
                return None, "inactive"
            return user, None

    # ----------------------------------------------------------------------------------------- organizations

    def create_organization(self, *, name: str, slug: str | None = None, org_id: str | None = None) -> Record:
        with self.writing() as state:
            oid = org_id or object_id()
            wanted = slug or reference.slugify(name) or oid
            taken = {other["slug"] for other in state["organizations"].values()}
            final, n = wanted, 0
            while final in taken:
                n += 1
                final = f"{wanted}-{n}"
            org: Record = {
                "id": oid,
                "name": name,
                "slug": final,
                "acronym": None,
                "description": "",
                "members": [],
                "created_at": iso(),
            }
            state["organizations"][oid] = org
            return org

    def organization_by_slug(self, slug: str) -> Record | None:
        with self.lock:
            for org in self.state["organizations"].values():
                if org["slug"] == slug:
                    return org
            return None

    def add_member(self, org_id: str, user_id: str, role: str = "admin") -> None:
        with self.writing() as state:
            org = state["organizations"][org_id]
            org["members"] = [m for m in org["members"] if m["user"] != user_id]
            org["members"].append({"user": user_id, "role": role, "since": iso()})

    def role_in(self, org_id: str | None, user: Record | None) -> str | None:
        if org_id is None or user is None:
            return None
        org = self.state["organizations"].get(org_id)
        if org is None:
            return None
        for member in org["members"]:
            if member["user"] == user["id"]:
                return str(member["role"])
        return None

    def user_organizations(self, user: Record) -> list[Record]:
        return [org for org in self.state["organizations"].values() if self.role_in(org["id"], user)]

    # ----------------------------------------------------------------------------------------- datasets

    def dataset(self, ident: str) -> tuple[Record | None, bool]:
        """(dataset, redirected) by id, current slug, or an old slug (udata answers 308 for the latter)."""
        datasets = self.state["datasets"]
        if ident in datasets:
            return datasets[ident], False
        for record in datasets.values():
            if record["slug"] == ident:
                return record, False
        target = self.state["slug_redirects"].get(ident)
        if target and target in datasets:
            return datasets[target], True
        return None, False

    def unique_slug(self, title: str, *, exclude: str | None = None) -> str:
        # udata SlugField: the title's slug, suffixed -1, -2… when taken (research §7.1). Deleted
        # datasets keep their slug until they are purged (research §2).
        base = reference.slugify(title)[:255] or "dataset"
        taken = {d["slug"] for d in self.state["datasets"].values() if d["id"] != exclude}
        taken |= set(self.state["slug_redirects"]) - {
            s for s, t in self.state["slug_redirects"].items() if t == exclude
        }
        slug, n = base, 0
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        return slug

    def zones(self) -> dict[str, Record]:
        table = {zone["id"]: zone for zone in reference.ZONES}
        for zone in self.state["zones"]:
            table[zone["id"]] = zone
        return table

    # ----------------------------------------------------------------------------------------- files

    def resource_path(self, fs_filename: str) -> Path:
        path = (self.files_dir / "resources" / fs_filename).resolve()
        if not str(path).startswith(str((self.files_dir / "resources").resolve())):
            raise ValueError("path escapes the storage")
        return path

    def store_resource_file(self, source: Path, fs_filename: str) -> None:
        """Move ``source`` into the resources storage, never overwriting (flask-storage default)."""
        target = self.resource_path(fs_filename)
        if target.exists():
            raise FileExists(fs_filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), target)

    def delete_resource_file(self, fs_filename: str | None) -> None:
        if fs_filename:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.resource_path(fs_filename).unlink()

    def chunk_path(self, upload_uuid: str, part: int) -> Path:
        safe = str(uuid.UUID(upload_uuid)) if _is_uuid(upload_uuid) else reference.slugify(upload_uuid)
        return self.files_dir / "chunks" / safe / str(part)

    def discard_chunks(self, upload_uuid: str) -> None:
        with self.writing() as state:
            state["chunks"].pop(upload_uuid, None)
        shutil.rmtree(self.chunk_path(upload_uuid, 0).parent, ignore_errors=True)

    def temp_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.files_dir, prefix=".upload-")
        os.close(fd)
        return Path(name)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
