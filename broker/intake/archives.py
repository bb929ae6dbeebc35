"""ZIP archives: list them, refuse the dangerous ones, and extract members for inspection under caps.

Threats handled (each refused with a French reason naming the archive):

- *zip slip*: member names with ``..``, an absolute path or a drive letter would land outside the
  extraction directory (Snyk "Zip Slip", 2018; APPNOTE 4.4.17: names are relative, "/" separated);
- *symbolic links*: Unix mode bits in ``external_attr`` (high 16 bits, S_IFLNK) would let a later step
  read or write outside the archive;
- *zip bombs*: declared sizes are checked first (total, per-entry ratio, whole-archive ratio), and every
  read goes through :class:`CappedReader`, which stops at the cap whatever the headers say;
- *nesting*: archives inside archives are followed to ``max_depth`` and refused beyond;
- *encrypted members*: they cannot be inspected, so they cannot be vouched for.

Member names are decoded as the producer's tool meant them (UTF-8 flag, else UTF-8 or CP850, the
French Windows OEM code page, instead of Python's CP437 guess) and sanitised before touching disk.
Extraction only ever happens into temporary directories owned by the caller.
"""

from __future__ import annotations

import io
import logging
import re
import stat
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from broker.intake.formats import IntakeRefused, human_size, sniff_binary
from broker.intake.staging import sanitize_filename

logger = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2
SUPPORTED_COMPRESSION = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
LISTING_MAX_ENTRIES = 1000  # entries kept in ``details``; the counts cover all of them
# Tools add these; they are never data (macOS resource forks, Finder and Explorer metadata).
JUNK_PARTS = ("__MACOSX",)
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied to every archive, nested ones included."""

    max_total_bytes: int = 4 * GIB
    max_ratio: float = 100.0
    max_entries: int = 10_000
    max_depth: int = 2
    # A member smaller than this cannot hurt whatever its ratio (small text files compress 100:1 or
    # more); the total cap still bounds the sum of many of them.
    ratio_floor_bytes: int = 1 * MIB


@dataclass
class ArchiveEntry:
    name: str  # decoded, "/" separated, as listed (nested members as "outer.zip/inner/name")
    size: int
    compressed_size: int
    depth: int
    content: str | None = None  # family sniffed from the first bytes (zip, pdf…), when read

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]


@dataclass
class ArchiveListing:
    entries: list[ArchiveEntry] = field(default_factory=list)
    total_size: int = 0
    compressed_size: int = 0
    nested: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # members whose compression cannot be read

    def files(self, depth: int = 1) -> list[ArchiveEntry]:
        return [e for e in self.entries if e.depth == depth and not is_junk(e.name)]

    def duplicate_basenames(self) -> list[str]:
        counts = Counter(e.basename.lower() for e in self.entries if not is_junk(e.name))
        return sorted(name for name, count in counts.items() if count > 1)

    def to_details(self) -> dict[str, Any]:
        kept = self.entries[:LISTING_MAX_ENTRIES]
        details: dict[str, Any] = {
            "entries": [{"name": e.name, "size": e.size} for e in kept],
            "entry_count": len(self.entries),
            "total_size": self.total_size,
            "compressed_size": self.compressed_size,
        }
        if len(self.entries) > len(kept):
            details["entries_truncated"] = True
        if self.nested:
            details["nested_archives"] = list(self.nested)
        if self.unsupported:
            details["unsupported_compression"] = self.unsupported[:LISTING_MAX_ENTRIES]
        duplicates = self.duplicate_basenames()
        if duplicates:
            details["duplicate_basenames"] = duplicates
        return details


def is_junk(name: str) -> bool:
    parts = name.split("/")
    return (
        any(p in JUNK_PARTS for p in parts) or parts[-1].lower() in JUNK_NAMES or parts[-1].startswith("._")
    )


# --------------------------------------------------------------------------------------------- names


def member_name(info: zipfile.ZipInfo) -> str:
    """The member name as its author wrote it. Without the UTF-8 flag (bit 11) Python decodes CP437;
    Windows tools in France actually wrote CP850, and many modern tools write UTF-8 unflagged."""
    name = info.filename
    if info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp850", errors="replace")


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name_reason(raw: str) -> str | None:
    """Why a member name would escape the extraction directory, or None when it is safe."""
    if "\x00" in raw:
        return "contient un caractère nul"
    name = raw.replace("\\", "/")
    if name.startswith("/"):
        return "est un chemin absolu"
    if _DRIVE.match(name):
        return "commence par une lettre de lecteur"
    if ".." in name.split("/"):
        return "remonte hors de l'archive (« ../ »)"
    return None


def safe_relative_path(name: str) -> PurePosixPath:
    """Sanitised relative path for extraction: each component keeps its accents (NFC) but loses
    control characters, leading dots and anything that is not a plain name."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return PurePosixPath(*[sanitize_filename(p) for p in parts]) if parts else PurePosixPath("fichier")


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


# --------------------------------------------------------------------------------------------- reading


class ExtractionBudget:
    """Bytes that may still be decompressed from one archive tree, shared by every read."""

    def __init__(self, archive: str, limits: ArchiveLimits) -> None:
        self.archive = archive
        self.limits = limits
        self.used = 0

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limits.max_total_bytes:
            raise IntakeRefused(
                self.archive,
                f"L'archive « {self.archive} » se décompresse en plus de "
                f"{human_size(self.limits.max_total_bytes)} : refusée (bombe de décompression ?).",
                "archive_too_large",
            )


class CappedReader(io.RawIOBase):
    """Reads a member and stops, whatever the headers declared, once it yields more than its declared
    size, more than ``max_ratio`` times its compressed size, or more than the archive's budget."""

    def __init__(self, raw: IO[bytes], info: zipfile.ZipInfo, budget: ExtractionBudget) -> None:
        super().__init__()
        self._raw = raw
        self._info = info
        self._budget = budget
        self._read = 0
        limits = budget.limits
        ratio_cap = int(max(info.compress_size, 1) * limits.max_ratio)
        self._cap = min(info.file_size, max(ratio_cap, limits.ratio_floor_bytes))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        count = len(data)
        self._read += count
        if self._read > self._cap:
            raise IntakeRefused(
                self._budget.archive,
                f"L'archive « {self._budget.archive} » : le membre « {member_name(self._info)} » "
                f"se décompresse au-delà de ce qu'il annonce ou de {self._budget.limits.max_ratio:g} fois "
                "sa taille compressée : refusée (bombe de décompression ?).",
                "archive_bomb",
            )
        self._budget.take(count)
        view[:count] = data
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: ExtractionBudget) -> CappedReader:
    """An unbuffered binary stream over one member, capped (see :class:`CappedReader`). Wrap it in
    ``io.BufferedReader`` for text; peeks stay unbuffered so they cost only the bytes they read."""
    try:
        raw = zf.open(info)
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as exc:
        raise IntakeRefused(
            budget.archive,
            f"L'archive « {budget.archive} » : le membre « {member_name(info)} » est illisible ({exc}).",
            "archive_unreadable",
        ) from exc
    return CappedReader(raw, info, budget)


def extract_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, budget: ExtractionBudget
) -> Path:
    """Copy one member under ``destination`` (a temporary directory) at its sanitised relative path."""
    root = destination.resolve()
    target = (root / safe_relative_path(member_name(info))).resolve()
    if not target.is_relative_to(root):  # belt and braces: names were checked at listing time
        raise IntakeRefused(
            budget.archive, f"L'archive « {budget.archive} » contient un chemin dangereux.", "archive_slip"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open_member(zf, info, budget) as source, target.open("wb") as sink:
            while chunk := source.read(MIB):
                sink.write(chunk)
    except IntakeRefused:
        target.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        target.unlink(missing_ok=True)
        raise IntakeRefused(
            budget.archive,
            f"L'archive « {budget.archive} » : le membre « {member_name(info)} » est corrompu ({exc}).",
            "archive_unreadable",
        ) from exc
    return target


def extract_members(
    zf: zipfile.ZipFile, infos: Iterable[zipfile.ZipInfo], destination: Path, budget: ExtractionBudget
) -> dict[str, Path]:
    """Extract several members; returns decoded member name -> extracted path."""
    return {member_name(info): extract_member(zf, info, destination, budget) for info in infos}


# --------------------------------------------------------------------------------------------- checks


def open_zip(path: Path, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise IntakeRefused(
            name, f"« {name} » n'est pas une archive ZIP lisible ({exc}).", "archive_unreadable"
        ) from exc


def check_archive(
    zf: zipfile.ZipFile,
    name: str,
    limits: ArchiveLimits,
    *,
    archive_size: int,
    budget: ExtractionBudget | None = None,
) -> ArchiveListing:
    """List ``zf`` and everything nested in it, refusing it at the first danger. Reads only a few bytes
    of each member (to find nested archives) and extracts nested ZIPs to a temporary directory."""
    budget = budget or ExtractionBudget(name, limits)
    listing = ArchiveListing()
    _check_level(zf, name, limits, listing, budget, depth=1, prefix="", archive_size=archive_size)
    return listing


def _refuse(name: str, reason: str, code: str) -> IntakeRefused:
    logger.info("archive %s refused: %s (%s)", name, code, reason)
    return IntakeRefused(name, f"L'archive « {name} » {reason}", code)


def _check_level(
    zf: zipfile.ZipFile,
    name: str,
    limits: ArchiveLimits,
    listing: ArchiveListing,
    budget: ExtractionBudget,
    *,
    depth: int,
    prefix: str,
    archive_size: int,
) -> None:
    infos = zf.infolist()
    level_total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        decoded = member_name(info)
        reason = unsafe_name_reason(info.filename) or unsafe_name_reason(decoded)
        if reason:
            raise _refuse(
                name, f"contient un chemin dangereux : « {prefix}{decoded} » {reason}.", "archive_slip"
            )
        if is_symlink(info):
            raise _refuse(
                name,
                f"contient un lien symbolique (« {prefix}{decoded} ») : refusé par sécurité.",
                "archive_symlink",
            )
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise _refuse(
                name,
                f"contient un membre chiffré (« {prefix}{decoded} ») : il ne peut pas être vérifié.",
                "archive_encrypted",
            )
        if len(listing.entries) >= limits.max_entries:
            raise _refuse(
                name, f"contient plus de {limits.max_entries} fichiers : refusée.", "archive_too_many_entries"
            )
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            ratio = info.file_size / max(info.compress_size, 1)
            raise _refuse(
                name,
                f"contient « {prefix}{decoded} », compressé {ratio:.0f} fois "
                f"({human_size(info.compress_size)} → {human_size(info.file_size)}) au-delà du maximum de "
                f"{limits.max_ratio:g} : refusée (bombe de décompression ?).",
                "archive_bomb",
            )
        level_total += info.file_size
        listing.total_size += info.file_size
        listing.compressed_size += info.compress_size
        if listing.total_size > limits.max_total_bytes:
            raise _refuse(
                name,
                f"annonce plus de {human_size(limits.max_total_bytes)} une fois décompressée : refusée.",
                "archive_too_large",
            )
        listing.entries.append(ArchiveEntry(prefix + decoded, info.file_size, info.compress_size, depth))
        files.append(info)
    if level_total > limits.ratio_floor_bytes and level_total > limits.max_ratio * max(archive_size, 1):
        raise _refuse(
            name,
            f"se décompresse {level_total / max(archive_size, 1):.0f} fois sa taille "
            f"({human_size(archive_size)} → {human_size(level_total)}) : refusée (bombe de décompression ?).",
            "archive_bomb",
        )
    # Second pass, only once every declared size is known to be sane: peek at each member's first
    # bytes to find nested archives, whatever their names say.
    entries = listing.entries[len(listing.entries) - len(files) :]
    for info, entry in zip(files, entries, strict=True):
        if info.file_size < 4:
            continue
        if info.compress_type not in SUPPORTED_COMPRESSION:
            # Deflate64 (Windows Explorer, large files) and others Python cannot read: listed, not opened.
            listing.unsupported.append(entry.name)
            continue
        with open_member(zf, info, budget) as stream:
            head = stream.read(8) or b""
        entry.content = sniff_binary(head) if len(head) >= 4 else None
        if entry.content == "zip":
            _check_nested(zf, info, entry, name, limits, listing, budget, depth=depth)


def _check_nested(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    entry: ArchiveEntry,
    name: str,
    limits: ArchiveLimits,
    listing: ArchiveListing,
    budget: ExtractionBudget,
    *,
    depth: int,
) -> None:
    if depth + 1 > limits.max_depth:
        raise _refuse(
            name,
            f"imbrique des archives sur plus de {limits.max_depth} niveaux (« {entry.name} ») : refusée.",
            "archive_too_deep",
        )
    listing.nested.append(entry.name)
    with tempfile.TemporaryDirectory(prefix="broker-nested-") as tmp:
        inner_path = extract_member(zf, info, Path(tmp), budget)
        try:
            inner = zipfile.ZipFile(inner_path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise _refuse(
                name, f"contient une archive corrompue (« {entry.name} ») : {exc}.", "archive_unreadable"
            ) from exc
        with inner:
            _check_level(
                inner,
                name,
                limits,
                listing,
                budget,
                depth=depth + 1,
                prefix=entry.name + "/",
                archive_size=info.file_size,
            )
