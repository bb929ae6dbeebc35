"""The dashboard in a real headless Chromium: log in, publish a GeoJSON (preview, then confirm), open every
page, export the board report; screenshots go to ``test-output/dashboard/`` (git-ignored) for a person to look
at.

Chromium comes from Debian's packages (the ``chromium_path`` fixture installs it when missing), driven by the
``playwright`` Python package; Playwright's own browser download is never used. The broker is real (API,
Celery worker, Redis), and so is data.gouv.fr's side: the local emulator (`broker emulate datagouv`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from broker.embedded import free_port
from tests.dashboard.conftest import APP, ORG, geojson, wait_for
from tests.fixtures.servers import REPO_ROOT, ProcessHandle, http_ok, start_process

pytestmark = pytest.mark.servers

OUTPUT = REPO_ROOT / "test-output" / "dashboard"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Sidebar label → the last text the page draws (for a staff member with one publication).
PAGES = [
    ("Mes publications", "Retirer cette publication"),
    ("Vue d'ensemble", "Derniers événements marquants"),
    ("Écarts nationaux", "Modifier un écart"),
    ("Migration", "Migrations"),
    ("Publications", "Échecs et nouveaux essais (0)"),
    ("Catégories", "Détail d'un besoin"),
    ("Rapport", "Aperçu du rapport"),
]


@pytest.fixture
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob("*"):
        if old.is_file():
            old.unlink()
    return OUTPUT


@pytest.fixture
def datagouv_emulator(tmp_path: Path) -> Iterator[str]:
    """The local data.gouv.fr emulator; yields the API root the broker calls (ending in /api/1)."""
    port = free_port()
    handle = start_process(
        [
            sys.executable,
            "-m",
            "broker",
            "emulate",
            "datagouv",
            "--port",
            str(port),
            "--allow-local-urls",
            "--state-dir",
            str(tmp_path / "datagouv"),
        ],
        None,
        tmp_path / "emulator-datagouv.log",
        http_ok(f"http://127.0.0.1:{port}/api/1/datasets/licenses/"),
        timeout=60,
        name="emulator-datagouv",
        cwd=REPO_ROOT,
    )
    try:
        yield f"http://127.0.0.1:{port}/api/1"
    finally:
        handle.stop()


def start_dashboard(api_url: str, log_path: Path) -> tuple[ProcessHandle, str]:
    """`streamlit run dashboard/app.py`, as `broker up` runs it, on a free loopback port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BROKER_")}
    env["BROKER_API_URL"] = api_url
    handle = start_process(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        env,
        log_path,
        http_ok(f"http://127.0.0.1:{port}/_stcore/health"),
        timeout=60,
        name="dashboard",
        cwd=REPO_ROOT,
    )
    return handle, f"http://127.0.0.1:{port}"


def settle(page: Any, text: str, timeout: float = 30.0, quiet: float = 1.5) -> None:
    """Wait until ``text`` is shown and Streamlit's "running" indicator has stayed off for ``quiet`` s.

    The indicator shows up a moment after a run starts, so one look at it is not enough.
    """
    page.get_by_text(text, exact=True).first.wait_for(timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count():
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= quiet:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # charts draw after the script ends


def upload(page: Any, path: Path, attempts: int = 3) -> None:
    """Give ``path`` to the file uploader; a rerun racing the upload can drop it, so try again."""
    uploader = page.locator('[data-testid="stFileUploader"]')
    for _ in range(attempts):
        uploader.locator("input[type=file]").set_input_files(str(path))
        try:
            uploader.filter(has_text=path.suffix).wait_for(timeout=10_000)  # long names are cut
            return
        except Exception:
            continue
    raise AssertionError(f"the uploader never showed {path.name}")


def shoot(page: Any, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, so grow the viewport."""
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]'); if (!m) return 1000;"
        " const inner = m.firstElementChild ? m.firstElementChild.scrollHeight : 0;"
        " return Math.max(m.scrollHeight, inner); }"
    )
    page.set_viewport_size({"width": 1400, "height": int(min(max(height + 40, 900), 6000))})
    time.sleep(0.5)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})


def test_dashboard_in_chromium(
    broker_stack: Callable[..., Any],
    datagouv_emulator: str,
    chromium_path: str,
    output_dir: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    stack = broker_stack(env={"BROKER_DATAGOUV_URL": datagouv_emulator, "BROKER_DATAGOUV_EMULATOR": "true"})
    stack.cli("org", "add", ORG, "--name", "Montpellier Méditerranée Métropole", check=True)
    token = stack.token(ORG, "staff")
    dashboard, url = start_dashboard(stack.url, tmp_path / "dashboard.log")
    data_file = tmp_path / "pistes_cyclables.geojson"
    data_file.write_bytes(geojson("Voie verte", features=5))
    client = stack.client(token)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            context = browser.new_context(
                viewport={"width": 1400, "height": 900}, locale="fr-FR", accept_downloads=True
            )
            outside: list[str] = []

            def loopback_only(route: Any) -> None:
                # The dashboard must work on a closed network: nothing may leave the machine.
                host = urlsplit(route.request.url).hostname or ""
                if route.request.url.startswith(("data:", "blob:", "file:")) or host in (
                    "127.0.0.1",
                    "localhost",
                ):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            context.route("**/*", loopback_only)
            page = context.new_page()
            console_errors: list[str] = []
            page.on("pageerror", lambda error: console_errors.append(str(error)))

            # Connexion with a local token.
            page.goto(url)
            settle(page, "Jeton local")
            shoot(page, output_dir / "01-connexion.png")
            page.locator("input[type=password]").fill(token)
            page.get_by_role("button", name="Se connecter").click()
            settle(page, "Se déconnecter")
            shoot(page, output_dir / "02-connecte.png")

            # Publier: fill in, preview, confirm.
            page.locator('[data-testid="stSidebar"]').get_by_text("Publier", exact=True).click()
            settle(page, "Publier un jeu de données")
            page.get_by_role("textbox", name="Titre", exact=True).fill("Pistes cyclables de la métropole")
            page.get_by_role("textbox", name="Description", exact=True).fill(
                "Réseau cyclable de Montpellier Méditerranée Métropole, mis à jour chaque trimestre."
            )
            keywords = page.get_by_role("textbox", name="Mots-clés", exact=True)
            keywords.fill("mobilité, vélo")
            keywords.press("Enter")
            settle(page, "Ressources")
            upload(page, data_file)
            page.get_by_role("button", name="Prévisualiser").click()
            settle(page, "Confirmer la publication", timeout=60)
            shoot(page, output_dir / "03-publier-apercu.png")
            page.get_by_role("button", name="Confirmer la publication").click()
            settle(page, "Suivre dans Mes publications", timeout=60)
            shoot(page, output_dir / "04-publier-confirme.png")

            listing = client.get("/api/v1/publications", params={"organization": ORG}).json()
            assert listing["total"] == 1
            publication_id = listing["data"][0]["id"]

            def delivered() -> bool:
                # An open vector dataset goes to the national platforms only; data.gouv.fr is the emulator.
                body = client.get(f"/api/v1/publications/{publication_id}").json()
                return any(d["target"] == "datagouv" and d["state"] == "done" for d in body["deliveries"])

            wait_for(delivered, timeout=90, what="the data.gouv.fr delivery")
            client.post("/api/v1/stats/migration/snapshot").raise_for_status()  # today's point of history

            for number, (label, marker) in enumerate(PAGES, start=5):
                page.locator('[data-testid="stSidebar"]').get_by_text(label, exact=True).click()
                settle(page, marker, timeout=60)
                slug = label.lower().replace("'", "").replace(" ", "-")
                shoot(page, output_dir / f"{number:02d}-{slug}.png")
                assert not page.locator('[data-testid="stException"]').count(), f"exception on {label}"

            page.locator('[data-testid="stSidebar"]').get_by_text("Mes publications", exact=True).click()
            settle(page, "Voir le détail de")
            statuses = page.locator('[data-testid="stMarkdown"]').filter(has_text="Publié sur data.gouv.fr")
            statuses.first.wait_for(timeout=30_000)

            # The board report: download the printable page, open it, print it to PDF.
            page.locator('[data-testid="stSidebar"]').get_by_text("Rapport", exact=True).click()
            settle(page, "Aperçu du rapport")
            with page.expect_download() as download_info:
                page.get_by_role("button", name="Télécharger le rapport (HTML imprimable)").click()
            report_path = output_dir / "rapport.html"
            download_info.value.save_as(str(report_path))
            html = report_path.read_text(encoding="utf-8")
            assert "<svg" in html and "Migration vers les plateformes nationales" in html
            report_page = context.new_page()
            report_page.goto(report_path.as_uri())
            report_page.screenshot(path=str(output_dir / "12-rapport-html.png"), full_page=True)
            report_page.pdf(path=str(output_dir / "rapport.pdf"), format="A4", print_background=True)
            assert (output_dir / "rapport.pdf").stat().st_size > 10_000

            assert not console_errors, console_errors
            assert not outside, f"requests outside the machine: {outside}"
            browser.close()
    finally:
        dashboard.stop()
    shots = sorted(p.name for p in output_dir.glob("*.png"))
    assert len(shots) == 12, shots
