"""Fixtures of the dashboard tests: Chromium for the browser test (from Debian's packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: Where Debian's `chromium` package puts its launcher.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), *CHROMIUM_PATHS, shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_chromium(timeout: float = 900.0) -> str:
    """Chromium's path, installing Debian's `chromium` package when it is missing.

    Playwright's own browser download does not work here (and a pinned browser build is one more thing to
    trust), so the test drives the distribution's Chromium. Raises RuntimeError with what to do by hand when
    the package cannot be installed (not root, no apt, no network to the Debian mirror).
    """
    found = find_chromium()
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            "Chromium est absent et apt-get n'existe pas sur cette machine : installez un Chromium et "
            "donnez son chemin dans CHROMIUM_PATH."
        )
    if os.geteuid() != 0:
        raise RuntimeError(
            "Chromium est absent et l'installer demande root : lancez `apt-get update && "
            "apt-get install -y chromium` (ou donnez le chemin d'un Chromium dans CHROMIUM_PATH)."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "fonts-dejavu-core"],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(command)}` a échoué (code {result.returncode}) ; Chromium est nécessaire "
                "au test du tableau de bord dans un vrai navigateur.\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
    found = find_chromium()
    if not found:
        raise RuntimeError("Le paquet chromium est installé mais aucun exécutable n'a été trouvé.")
    return found


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of a Chromium executable; installed from Debian's packages when missing (fails, never skips)."""
    try:
        return install_chromium()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"Chromium indisponible pour le test navigateur : {exc}", pytrace=False)


# ------------------------------------------------------------------------------------------ the broker side

ORG = "montpellier-mediterranee-metropole"
ORG_NAME = "Montpellier Méditerranée Métropole"
OTHER_ORG = "toulouse-metropole"
APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def geojson(name: str = "Voie verte de la Mosson", features: int = 3) -> bytes:
    """A small valid GeoJSON of cycle paths in Montpellier (WGS 84)."""
    import json

    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"nom": f"{name} {i}", "longueur_m": 120 + i},
                "geometry": {"type": "LineString", "coordinates": [[3.80 + i / 100, 43.60], [3.90, 43.62]]},
            }
            for i in range(features)
        ],
    }
    return json.dumps(collection, ensure_ascii=False).encode("utf-8")


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (the deliveries run in a real Celery worker)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)
