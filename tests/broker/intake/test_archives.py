"""Archive safety: zip slip, symbolic links, bombs (declared and actual sizes), nesting, encryption."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from broker.intake import archives
from broker.intake.archives import (
    ArchiveLimits,
    ExtractionBudget,
    extract_member,
    member_name,
    safe_relative_path,
)
from broker.intake.inspect import IntakeRefused, inspect_file
from tests.broker.intake import samples


def test_plain_archive_lists_its_entries(tmp_path: Path, blob: Path) -> None:
    with zipfile.ZipFile(blob, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notice.pdf", samples.pdf(tmp_path / "n.pdf").read_bytes())
        zf.writestr("annexes/tableau.csv", "a,b\n1,2\n")
        zf.writestr("__MACOSX/._notice.pdf", b"junk")
    description = inspect_file(blob, "dossier.zip")
    assert (description.format, description.kind, description.media_type) == (
        "zip",
        "archive",
        "application/zip",
    )
    listing = description.details["archive"]
    assert [e["name"] for e in listing["entries"]][:2] == ["notice.pdf", "annexes/tableau.csv"]
    assert listing["entry_count"] == 3
    assert listing["total_size"] == sum(e["size"] for e in listing["entries"])


def test_zip_bomb_is_refused_by_ratio_without_decompressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = samples.zip_bomb(tmp_path / "bombe.zip", megabytes=64)
    assert path.stat().st_size < 1024 * 1024  # 64 MiB of zeros in well under 1 MiB

    def never(*_: object) -> int:
        raise AssertionError("a member was decompressed")

    monkeypatch.setattr(archives.CappedReader, "readinto", never)
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "bombe.zip")
    assert caught.value.code == "archive_bomb"
    assert "« bombe.zip »" in caught.value.reason
    assert "bombe de décompression" in caught.value.reason


def test_total_declared_size_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "gros.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", os.urandom(600 * 1024))
        zf.writestr("b.bin", os.urandom(600 * 1024))
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "gros.zip", limits=ArchiveLimits(max_total_bytes=1024 * 1024))
    assert caught.value.code == "archive_too_large"


def test_too_many_entries(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for index in range(12):
            zf.writestr(f"f{index}.txt", "x")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "many.zip", limits=ArchiveLimits(max_entries=10))
    assert caught.value.code == "archive_too_many_entries"


def test_reading_stops_at_the_cap_whatever_the_headers_say(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(3 * 1024 * 1024))
    destination = tmp_path / "out"
    destination.mkdir()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("zeros.bin")
        # The budget runs out mid-member: extraction stops and leaves nothing behind.
        budget = ExtractionBudget("a.zip", ArchiveLimits(max_total_bytes=1024 * 1024, max_ratio=10_000))
        with pytest.raises(IntakeRefused) as caught:
            extract_member(zf, info, destination, budget)
        assert caught.value.code == "archive_too_large"
        assert budget.used <= 2 * 1024 * 1024
        # The actual ratio is enforced while reading too, not only from the declared sizes.
        budget = ExtractionBudget("a.zip", ArchiveLimits(max_ratio=20, ratio_floor_bytes=64 * 1024))
        with pytest.raises(IntakeRefused) as caught:
            extract_member(zf, info, destination, budget)
        assert caught.value.code == "archive_bomb"
    assert list(destination.rglob("*.bin")) == []


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../evil.txt", "remonte hors de l'archive"),
        ("donnees/../../evil.txt", "remonte hors de l'archive"),
        ("/etc/cron.d/evil", "chemin absolu"),
        ("C:/Windows/evil.txt", "lettre de lecteur"),
        ("..\\evil.txt", "remonte hors de l'archive"),
    ],
)
def test_zip_slip_is_refused(tmp_path: Path, member: str, why: str) -> None:
    path = samples.zip_with_entry(tmp_path / "slip.zip", zipfile.ZipInfo(member), b"pwned")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "slip.zip")
    assert caught.value.code == "archive_slip"
    assert why in caught.value.reason
    assert not (tmp_path.parent / "evil.txt").exists()


def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    path = samples.zip_with_entry(tmp_path / "lien.zip", samples.symlink_info("donnees.csv"), b"/etc/passwd")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "lien.zip")
    assert caught.value.code == "archive_symlink"
    assert "lien symbolique (« donnees.csv »)" in caught.value.reason


def _nest(tmp_path: Path, levels: int) -> Path:
    inner = tmp_path / "level0.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("donnees.csv", "a,b\n1,2\n")
    for level in range(1, levels):
        outer = tmp_path / f"level{level}.zip"
        with zipfile.ZipFile(outer, "w") as zf:
            # Named .dat: nesting is found by content, not by name.
            zf.write(inner, f"niveau{level}.dat")
        inner = outer
    return inner


def test_one_nested_archive_is_listed(tmp_path: Path) -> None:
    description = inspect_file(_nest(tmp_path, 2), "lot.zip")
    listing = description.details["archive"]
    assert listing["nested_archives"] == ["niveau1.dat"]
    assert "niveau1.dat/donnees.csv" in [e["name"] for e in listing["entries"]]


def test_nesting_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(_nest(tmp_path, 3), "lot.zip")
    assert caught.value.code == "archive_too_deep"
    assert "plus de 2 niveaux" in caught.value.reason


def test_encrypted_member_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("secret.csv", "a,b\n")
    data = bytearray(buffer.getvalue())
    # Set bit 0 (encrypted) of the general purpose flags, in the local and the central headers.
    data[6] |= 0x01
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x01
    path = tmp_path / "secret.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "secret.zip")
    assert caught.value.code == "archive_encrypted"


def test_not_a_zip_despite_the_signature(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "x.zip")
    assert caught.value.code == "archive_unreadable"


def test_member_names_are_decoded_as_their_tools_wrote_them() -> None:
    # Without the UTF-8 flag Python decodes names as CP437; French Windows tools wrote CP850
    # ("À" is 0xB7 there, a box-drawing sign in CP437) and many tools write UTF-8 unflagged.
    cp850 = zipfile.ZipInfo("À Lodève/réseau.shp".encode("cp850").decode("cp437"))
    assert member_name(cp850) == "À Lodève/réseau.shp"
    utf8 = zipfile.ZipInfo("Sète/quais.csv".encode().decode("cp437"))
    assert member_name(utf8) == "Sète/quais.csv"


def test_extraction_paths_are_sanitised() -> None:
    assert str(safe_relative_path("./a/\x07.cachée/b.txt")) == "a/cachée/b.txt"


def test_members_in_an_unreadable_compression_are_listed_not_opened(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("gros.tif", b"II*\x00" + bytes(64))
    data = bytearray(buffer.getvalue())
    # Compression method 9 (Deflate64, APPNOTE 4.4.5) in the local and the central headers.
    data[8:10] = (9).to_bytes(2, "little")
    central = data.index(b"PK\x01\x02")
    data[central + 10 : central + 12] = (9).to_bytes(2, "little")
    path = tmp_path / "lot.zip"
    path.write_bytes(bytes(data))
    description = inspect_file(path, "lot.zip")
    assert description.details["archive"]["unsupported_compression"] == ["gros.tif"]
    assert any("Deflate64" in w for w in description.warnings)


def test_office_documents_are_zip_containers(tmp_path: Path) -> None:
    path = samples.zip_texts(
        tmp_path / "x.docx", {"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}
    )
    description = inspect_file(path, "notice.docx")
    assert (description.format, description.kind) == ("docx", "document")
