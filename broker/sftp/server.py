"""The SFTP deposit server (asyncssh): public-key login as the organisation, a chrooted inbox, and a
watcher that turns complete drops into publications.

Login: the SSH user name is the organisation's slug; only public keys registered for that organisation
(``POST /api/v1/organizations/{slug}/sftp-keys``) are accepted; no password, no shell, no forwarding.

The root a session sees is its organisation's inbox ``<data_dir>/sftp/<slug>/``. Paths with a ``..``
component are refused outright (asyncssh's chroot would only fold them back into the inbox), and links
cannot be created, so nothing outside the inbox is reachable.

Half-written files are never picked up. A file counts as complete when
- no SFTP session has it open for writing, and
- the last session that wrote it *closed* it (a session cut mid-transfer leaves it incomplete until it is
  written again), with the size and date seen at that close, or, for a file put there by other means,
  its size and date have not moved for ``BROKER_SFTP_SETTLE_SECONDS``;
- and its name does not end in ``.part``: uploading ``x.gpkg.part`` then renaming it to ``x.gpkg`` is the
  other supported convention (the rename carries the "closed" state over).
A manifest is processed once it and every file it cites are complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from broker.config import get_settings
from broker.errors import BrokerError, InvalidInput
from broker.sftp import service
from broker.sftp.service import KeyIdentity
from broker.sftp.settings import SftpSettings, get_sftp_settings

logger = logging.getLogger(__name__)


@dataclass
class _FileState:
    writers: int = 0
    closed: tuple[int, int] | None = None  # (size, mtime_ns) when its writer closed it
    abandoned: bool = False
    identity: KeyIdentity | None = None


@dataclass
class _Seen:
    signature: tuple[int, int]
    since: float


@dataclass
class _Inbox:
    slug: str
    root: Path
    files: dict[str, _FileState] = field(default_factory=dict)
    seen: dict[str, _Seen] = field(default_factory=dict)
    waiting_since: dict[str, float] = field(default_factory=dict)
    busy: bool = False


class Watcher:
    """Tracks what sessions write, and processes complete drops, one at a time per inbox."""

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self.inboxes: dict[str, _Inbox] = {}
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    def inbox(self, slug: str) -> _Inbox:
        found = self.inboxes.get(slug)
        if found is None:
            found = self.inboxes[slug] = _Inbox(slug, service.inbox(slug))
        return found

    # -- what sessions do
    def opened(self, slug: str, name: str) -> None:
        state = self.inbox(slug).files.setdefault(name, _FileState())
        state.writers += 1
        state.closed = None
        state.abandoned = False

    def closed(self, slug: str, name: str, identity: KeyIdentity | None, *, cut: bool) -> None:
        box = self.inbox(slug)
        state = box.files.setdefault(name, _FileState())
        state.writers = max(0, state.writers - 1)
        if cut:
            state.abandoned = True
            logger.info("sftp %s: %s left half-written by a cut session", slug, name)
        elif state.writers == 0:
            state.closed = _signature(box.root / name)
            state.identity = identity
        self.wake.set()

    def renamed(self, slug: str, old: str, new: str) -> None:
        box = self.inbox(slug)
        state = box.files.pop(old, None)
        box.seen.pop(old, None)
        if state is not None:
            if state.closed is not None:
                state.closed = _signature(box.root / new)
            box.files[new] = state
        self.wake.set()

    def removed(self, slug: str, name: str) -> None:
        box = self.inbox(slug)
        box.files.pop(name, None)
        box.seen.pop(name, None)

    # -- completeness
    def complete(self, box: _Inbox, name: str, now: float) -> bool:
        if name.endswith(service.PARTIAL_SUFFIX):
            return False
        path = box.root / name
        signature = _signature(path)
        if signature is None:
            return False
        state = box.files.get(name)
        if state is not None:
            if state.writers or state.abandoned:
                return False
            if state.closed is not None and state.closed == signature:
                return True
        seen = box.seen.get(name)
        if seen is None or seen.signature != signature:
            box.seen[name] = _Seen(signature, now)
            return False
        return now - seen.since >= self.settings.sftp_settle_seconds

    # -- the loop
    async def run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.sftp_scan_seconds)
            self.wake.clear()
            try:
                await self.scan()
            except Exception:
                logger.exception("sftp watcher: scan failed")

    async def scan(self) -> None:
        root = service.sftp_root()
        if not root.is_dir():
            return
        now = time.monotonic()
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            box = self.inbox(directory.name)
            if box.busy:
                continue
            for path in sorted(p for p in directory.iterdir() if p.is_file()):
                if not service.is_manifest_name(path.name) or not self.complete(box, path.name, now):
                    continue
                await self._consider(box, path.name, now)

    async def _consider(self, box: _Inbox, name: str, now: float) -> None:
        refused: BrokerError | None = None
        try:
            raw = await asyncio.to_thread(
                service.read_manifest, box.root / name, self.settings.sftp_manifest_max_bytes
            )
        except InvalidInput as exc:
            raw, refused = {}, exc
        if raw is None:
            return  # a data file (GeoJSON...) that is no manifest
        if refused is None:
            try:
                service.precheck(box.slug, raw)
            except InvalidInput as exc:
                refused = exc
        if refused is None:
            missing = [f for f in service.cited_files(raw) if not self.complete(box, f, now)]
            if missing:
                started = box.waiting_since.setdefault(name, now)
                if now - started < self.settings.sftp_wait_seconds:
                    return
                absent = [f for f in missing if not (box.root / f).exists()]
                refused = service.missing_files_error(absent or missing, raw)
        box.waiting_since.pop(name, None)
        state = box.files.get(name)
        identity = state.identity if state else None
        box.busy = True
        try:
            busy = {f for f, state in box.files.items() if state.writers}
            await asyncio.to_thread(
                service.process, box.root, box.slug, name, raw, identity, refused=refused, keep=busy
            )
        finally:
            box.busy = False
            for cited in [name, *service.cited_files(raw)]:
                self.removed(box.slug, cited)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


# --------------------------------------------------------------------------------------------- SSH


class _SSHServer(asyncssh.SSHServer):
    """One connection: public keys only, checked against the organisation's registered keys."""

    def __init__(self) -> None:
        self.identity: KeyIdentity | None = None
        self.peer: Any = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.peer = conn.get_extra_info("peername")

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        identity = await asyncio.to_thread(service.authenticate, username, key)
        if identity is None:
            logger.info("sftp login refused for %r from %s (%s)", username, self.peer, key.get_fingerprint())
            return False
        self.identity = identity
        logger.info("sftp login %s with key %s (%s)", username, identity.label, identity.fingerprint)
        return True


def _climbs(path: bytes) -> bool:
    """True when ``path`` goes above the inbox's root at some point ("../x", "a/../../x")."""
    depth = 0
    for part in path.replace(b"\\", b"/").split(b"/"):
        if part == b"..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (b"", b"."):
            depth += 1
    return False


class _InboxSFTPServer(asyncssh.SFTPServer):
    """The organisation's inbox as the SFTP root, telling the watcher what is written and closed."""

    def __init__(self, chan: asyncssh.SSHServerChannel, watcher: Watcher) -> None:
        conn = chan.get_connection()
        owner = conn.get_owner()
        identity = owner.identity if isinstance(owner, _SSHServer) else None
        if identity is None:  # cannot happen: the connection authenticated with a registered key
            raise asyncssh.SFTPPermissionDenied("authentification requise")
        self.identity = identity
        self.slug = identity.slug
        self.watcher = watcher
        self.root = watcher.inbox(self.slug).root
        self.writing: dict[int, str] = {}
        self.chan = chan
        super().__init__(chan, chroot=os.fsencode(self.root))

    def map_path(self, path: bytes) -> bytes:
        if _climbs(path):
            raise asyncssh.SFTPPermissionDenied("chemin refusé : « .. » ne sort pas de la boîte de dépôt")
        return super().map_path(path)

    # A directory listing asks for the attributes of "<dir>/..": at the root, those of the root itself.
    def lstat(self, path: bytes) -> Any:
        return super().lstat(b"/" if _climbs(path) else path)

    def stat(self, path: bytes) -> Any:
        return super().stat(b"/" if _climbs(path) else path)

    def _relative(self, path: bytes) -> str | None:
        """The name of a file directly in the inbox (the only ones the watcher looks at), else None."""
        local = os.fsdecode(self.map_path(path))
        parent, name = posixpath.split(local)
        return name if Path(parent) == self.root else None

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open(path, pflags, attrs)
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC):
            name = self._relative(path)
            if name is not None:
                self.writing[id(file_obj)] = name
                self.watcher.opened(self.slug, name)
        return file_obj

    def close(self, file_obj: object) -> None:
        super().close(file_obj)
        name = self.writing.pop(id(file_obj), None)
        if name is not None:
            # asyncssh closes the files a vanished session left open before calling exit(); such a close
            # is no client's "done": its channel is already closing.
            self.watcher.closed(self.slug, name, self.identity, cut=self.chan.is_closing())

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().rename(oldpath, newpath)
        self._renamed(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().posix_rename(oldpath, newpath)
        self._renamed(oldpath, newpath)

    def _renamed(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = self._relative(oldpath), self._relative(newpath)
        if old is not None and new is not None:
            self.watcher.renamed(self.slug, old, new)

    def remove(self, path: bytes) -> None:
        super().remove(path)
        name = self._relative(path)
        if name is not None:
            self.watcher.removed(self.slug, name)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("les liens ne sont pas autorisés dans la boîte de dépôt")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("les liens ne sont pas autorisés dans la boîte de dépôt")


def host_key() -> asyncssh.SSHKey:
    """The server's host key, made once and kept in the data directory (clients pin it)."""
    path = get_settings().keys_dir / "sftp_host_ed25519"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(key.export_private_key())
        temporary.chmod(0o600)
        temporary.replace(path)
    return asyncssh.read_private_key(path)


async def serve(host: str, port: int, *, ready_file: Path | None = None) -> None:
    """Listen until cancelled."""
    settings = get_sftp_settings()
    watcher = Watcher(settings)
    key = host_key()
    server = await asyncssh.listen(
        host,
        port,
        server_host_keys=[key],
        server_factory=_SSHServer,
        sftp_factory=lambda chan: _InboxSFTPServer(chan, watcher),
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        allow_pty=False,
        login_timeout=60,
    )
    actual = server.get_port() or port
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.write_text(json.dumps({"host": host, "port": actual, "pid": os.getpid()}) + "\n")
    logger.info("SFTP server listening on %s:%s (host key %s)", host, actual, key.get_fingerprint("sha256"))
    loop_task = asyncio.create_task(watcher.run())
    try:
        await server.wait_closed()
    finally:
        loop_task.cancel()
        server.close()
