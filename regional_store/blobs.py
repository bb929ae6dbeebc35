"""Content-addressed file storage: bytes are stored once under their sha256, streamed in constant memory."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"file larger than {limit} bytes")
        self.limit = limit


class BlobStore:
    """Files under ``root/ab/cd/<sha256>``; writes go through a temporary file and an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def temp_file(self) -> tuple[int, Path]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="part-")
        return fd, Path(name)

    def put_stream(
        self, stream: BinaryIO, *, max_bytes: int | None = None, rate: int | None = None
    ) -> tuple[str, int, Path]:
        """Store ``stream``; return (sha256, size, path). Raises :class:`BlobTooLarge` past ``max_bytes``.

        ``rate`` caps the copy speed in bytes per second (a good neighbour on a shared disk).
        """
        sha256, size, path, _ = self.put_stream_created(stream, max_bytes=max_bytes, rate=rate)
        return sha256, size, path

    def put_stream_created(
        self, stream: BinaryIO, *, max_bytes: int | None = None, rate: int | None = None
    ) -> tuple[str, int, Path, bool]:
        """Like :meth:`put_stream`, also telling whether this call created the blob."""
        fd, tmp_path = self.temp_file()
        digest = hashlib.sha256()
        size = 0
        started = time.monotonic()
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
                    if rate:
                        ahead = size / rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            created = not self.exists(sha256)
            return (*self.adopt(tmp_path, sha256, size), created)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise

    def adopt(self, tmp_path: Path, sha256: str, size: int) -> tuple[str, int, Path]:
        """Move an already hashed temporary file into place (or drop it if the blob exists)."""
        final = self.path(sha256)
        if final.exists():
            tmp_path.unlink(missing_ok=True)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, final)
        return sha256, size, final

    def put_file(self, source: Path, *, rate: int | None = None) -> tuple[str, int, Path]:
        with source.open("rb") as stream:
            return self.put_stream(stream, rate=rate)

    def link_from(self, other: BlobStore, sha256: str, *, rate: int | None = None) -> Path:
        """Make blob ``sha256`` of ``other`` present here: a hard link when possible, else a copy."""
        final = self.path(sha256)
        if final.exists():
            return final
        source = other.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if rate is None:
            try:
                os.link(source, final)
                return final
            except OSError:
                pass
        stored, _, path = self.put_file(source, rate=rate)
        if stored != sha256:
            path.unlink(missing_ok=True)
            raise OSError(f"blob {sha256} is corrupt in {other.root}")
        return path

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def iter_bytes(self, sha256: str, chunk: int = CHUNK) -> Iterator[bytes]:
        with self.open(sha256) as stream:
            while data := stream.read(chunk):
                yield data

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def clear_tmp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
