"""Intake tests run `broker` through the shim that wires the intake hooks (see shim.py)."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def broker_command() -> list[str]:
    return [sys.executable, "-m", "tests.broker.uploads.shim"]
