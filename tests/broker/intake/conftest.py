"""Intake tests: every temporary directory the inspection creates lands under the test's own tmp_path,
so a test can prove nothing was left behind."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == [], "inspection left temporary files behind"


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    """Where a content-addressed blob lives: a path with no extension and a meaningless name."""
    folder = tmp_path / "blobs" / "ab"
    folder.mkdir(parents=True)
    return folder / "ab3f09c1d2e4"
