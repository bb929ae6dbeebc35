"""Receive uploaded files into the content-addressed store, and take them back if the request fails."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from broker.errors import PayloadTooLarge
from regional_store.blobs import BlobStore, BlobTooLarge

logger = logging.getLogger(__name__)


def sanitize_filename(name: str) -> str:
    """Keep the base name, accents included (NFC); drop paths, control characters and leading dots."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = base.strip().lstrip(".")
    return base[:255] or "fichier"


@dataclass
class StagedFile:
    name: str
    sha256: str
    size: int
    path: Path
    new: bool


class Staging:
    """Files received by one request. ``discard()`` removes the blobs this request created."""

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.files: list[StagedFile] = []

    def add(self, filename: str, stream: BinaryIO) -> StagedFile:
        name = sanitize_filename(filename)
        try:
            sha256, size, path, created = self.store.put_stream_created(stream, max_bytes=self.max_bytes)
        except BlobTooLarge as exc:
            raise PayloadTooLarge(
                f"Le fichier « {name} » dépasse la taille maximale acceptée ({exc.limit} octets).",
                fields={name: ["fichier trop volumineux"]},
            ) from exc
        staged = StagedFile(name=name, sha256=sha256, size=size, path=path, new=created)
        self.files.append(staged)
        return staged

    def by_name(self) -> dict[str, StagedFile]:
        return {f.name: f for f in self.files}

    def discard(self, is_referenced: Callable[[str], bool]) -> None:
        """Remove blobs created by this request that nothing in the database references."""
        for staged in self.files:
            if staged.new and not is_referenced(staged.sha256):
                self.store.delete(staged.sha256)
        self.files.clear()
