"""The ``broker`` command: run the service, operate it, and publish through it."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from broker.config import get_settings, reset_settings

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Broker de publication OPenIG : publier une fois, livrer à data.gouv.fr, à la Géoplateforme "
    "et à l'entrepôt régional.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
org_app = typer.Typer(help="Organisations (commande d'exploitation : agit directement sur la base).")
token_app = typer.Typer(help="Jetons d'accès locaux (commande d'exploitation).")
categories_app = typer.Typer(help="Le catalogue des besoins (categories.yaml).")
db_app = typer.Typer(help="Le schéma de la base de données (migrations Alembic, SQLite ou PostgreSQL).")
app.add_typer(org_app, name="org")
app.add_typer(token_app, name="token")
app.add_typer(categories_app, name="categories")
app.add_typer(db_app, name="db")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="BROKER_DATA_DIR", help="Data directory (default ./var)."),
]
ApiUrl = Annotated[str | None, typer.Option("--url", envvar="BROKER_API_URL", help="Broker API base URL.")]
Token = Annotated[
    str | None, typer.Option("--token", envvar="BROKER_TOKEN", help="Bearer token (broker token issue).")
]
Categories = Annotated[
    Path | None, typer.Option("--categories", envvar="BROKER_CATEGORIES", help="categories.yaml to use.")
]


def _use(data_dir: Path | None, categories: Path | None = None, *, service: bool = False) -> None:
    """Point every later settings read at this data directory (children inherit the environment)."""
    if data_dir is not None:
        os.environ["BROKER_DATA_DIR"] = str(data_dir.expanduser().resolve())
    if categories is not None:
        os.environ["BROKER_CATEGORIES"] = str(categories.expanduser().resolve())
    reset_settings()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Services log at the configured level; one-shot commands only say what went wrong.
    level = settings.log_level if service else "WARNING"
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _echo_err(message: str) -> None:
    typer.echo(message, err=True)


# --------------------------------------------------------------------------------------------- running


@app.command()
def up(
    data_dir: DataDir = None,
    port: Annotated[int, typer.Option("--port", help="API port.")] = 8000,
    dashboard_port: Annotated[int, typer.Option("--dashboard-port", help="Dashboard port.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    categories: Categories = None,
) -> None:
    """Run the whole broker on this machine with embedded defaults (SQLite, files, Redis, worker)."""
    _use(data_dir, categories, service=True)
    from broker.up import run_up

    raise typer.Exit(
        run_up(
            get_settings().data_dir,
            api_port=port,
            dashboard_port=dashboard_port,
            host=host,
            categories=categories,
        )
    )


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Apply the database migrations (once per upgrade, before starting the API and workers)."""
    _use(data_dir)
    from broker.db import migrate as run_migrations

    run_migrations()
    typer.echo("base de données à jour")


@app.command()
def api(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    categories: Categories = None,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Do not migrate at start.")] = False,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    _use(data_dir, categories, service=True)
    import uvicorn

    if not no_migrate:
        from broker.db import migrate as run_migrations

        run_migrations()
    uvicorn.run(
        "broker.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=get_settings().log_level.lower(),
        proxy_headers=True,
    )


@app.command()
def worker(
    data_dir: DataDir = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Worker processes.")] = 2,
    queues: Annotated[str | None, typer.Option("--queues", help="Comma-separated queues.")] = None,
    categories: Categories = None,
) -> None:
    """Run a Celery worker (all queues unless --queues)."""
    _use(data_dir, categories, service=True)
    from broker.worker import QUEUES, celery_app

    name = f"worker-{os.getpid()}@{socket.gethostname()}"
    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={get_settings().log_level}",
            f"--concurrency={concurrency}",
            f"--queues={queues or ','.join(QUEUES)}",
            f"--hostname={name}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@app.command()
def beat(data_dir: DataDir = None) -> None:
    """Run Celery beat (the delivery sweeper); exactly one per deployment."""
    _use(data_dir, service=True)
    from broker.worker import celery_app

    get_settings().run_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--loglevel={get_settings().log_level}"])


@app.command()
def emulate(
    platform: Annotated[str, typer.Argument(help="datagouv or geoplateforme")],
    port: Annotated[int, typer.Option("--port")] = 7000,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="Keep state across restarts.")] = None,
    allow_local_urls: Annotated[
        bool,
        typer.Option("--allow-local-urls", help="data.gouv.fr: accept loopback URLs (URLS_ALLOW_LOCAL)."),
    ] = False,
    read_only: Annotated[bool, typer.Option("--read-only", help="data.gouv.fr: start in 423 mode.")] = False,
    step_seconds: Annotated[
        float, typer.Option("--step-seconds", help="Géoplateforme: seconds per asynchronous status step.")
    ] = 0.5,
) -> None:
    """Run a local emulator of a national API (for demos, dry runs, tests and benchmarks)."""
    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if platform == "datagouv":
        from emulators.datagouv import run as run_datagouv

        run_datagouv(
            port, host=host, allow_local_urls=allow_local_urls, state_dir=state_dir, read_only=read_only
        )
    elif platform == "geoplateforme":
        from emulators.geoplateforme import run as run_geoplateforme

        run_geoplateforme(port, host=host, step_seconds=step_seconds, state_dir=state_dir)
    else:
        _echo_err("erreur : plateforme inconnue ; choisir datagouv ou geoplateforme")
        raise typer.Exit(2)


@app.command()
def reconcile(
    target: Annotated[str, typer.Argument(help="datagouv, geoplateforme or regional")],
    publication: Annotated[list[str] | None, typer.Option("--publication", help="Only these ids.")] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Repair the drift found.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Compare the ledger with what a target holds (drift), and repair it on request (operator)."""
    _use(data_dir)
    from broker.db import migrate as run_migrations
    from broker.deliveries import service as deliveries

    run_migrations()
    reports = deliveries.reconcile(target, publication_ids=publication or None, repair=repair)
    drifting = 0
    for report in reports:
        if report.get("error"):
            typer.echo(f"{report['publication_id']}  erreur : {report['error']}")
            drifting += 1
            continue
        if not report["drift"]:
            typer.echo(f"{report['publication_id']}  à jour — {report['title']}")
            continue
        drifting += 1
        state = "réparé" if report["repaired"] else "écart"
        typer.echo(f"{report['publication_id']}  {state} — {report['title']}")
        for drift in report["drift"]:
            typer.echo(f"    {drift['kind']:<8} {drift['entity']}: {drift['message']}")
    typer.echo(f"{len(reports)} publication(s) comparée(s), {drifting} avec écart")
    raise typer.Exit(1 if drifting and not repair else 0)


# --------------------------------------------------------------------------------------------- operator


@org_app.command("add")
def org_add(
    slug: str,
    name: Annotated[str, typer.Option("--name", help="Nom complet de l'organisation.")],
    email: Annotated[str | None, typer.Option("--email", help="Adresse de contact.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Register an organisation."""
    _use(data_dir)
    from broker.db import migrate as run_migrations
    from broker.db import session_scope
    from broker.errors import BrokerError
    from broker.organizations import service

    run_migrations()
    try:
        with session_scope() as session:
            organization = service.create(session, slug, name, contact_email=email)
            typer.echo(f"organisation « {organization.slug} » enregistrée ({organization.id})")
    except BrokerError as exc:
        _echo_err(f"erreur : {exc.detail} {json.dumps(exc.fields, ensure_ascii=False) if exc.fields else ''}")
        raise typer.Exit(1) from exc


@org_app.command("list")
def org_list(data_dir: DataDir = None) -> None:
    """List organisations."""
    _use(data_dir)
    from broker.db import migrate as run_migrations
    from broker.db import session_scope
    from broker.organizations import repository

    run_migrations()
    with session_scope() as session:
        for organization in repository.list_all(session):
            typer.echo(f"{organization.slug}\t{organization.name}")


@org_app.command("credentials")
def org_credentials(
    slug: str,
    target: Annotated[str, typer.Argument(help="datagouv or geoplateforme")],
    fields: Annotated[
        list[str] | None,
        typer.Argument(
            help="name=value, or name alone to type a secret without echo (api_key, client_secret…)"
        ),
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Forget the credentials.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Store an organisation's credentials for a national target, encrypted (operator)."""
    _use(data_dir)
    from broker.db import migrate as run_migrations
    from broker.db import session_scope
    from broker.errors import BrokerError
    from broker.organizations import service

    run_migrations()
    values: dict[str, str] = {}
    for item in fields or []:
        name, sep, value = item.partition("=")
        # Secrets typed at a prompt stay out of shell history and process listings.
        values[name] = value if sep else typer.prompt(name, hide_input=True)
    try:
        with session_scope() as session:
            organization = service.get_by_slug(session, slug)
            if remove:
                service.remove_credentials(session, organization, target, actor=None)
                typer.echo(f"identifiants {target} de « {slug} » supprimés")
                return
            record = service.set_credentials(session, organization, target, values, actor=None)
            typer.echo(
                f"identifiants {target} de « {slug} » enregistrés (chiffrés) : {', '.join(record.fields)}"
            )
    except BrokerError as exc:
        _echo_err(f"erreur : {exc.detail} {json.dumps(exc.fields, ensure_ascii=False) if exc.fields else ''}")
        raise typer.Exit(1) from exc


@token_app.command("issue")
def token_issue(
    org: Annotated[
        str | None, typer.Option("--org", help="Slug de l'organisation (absent pour staff/board).")
    ] = None,
    role: Annotated[str, typer.Option("--role", help="producer, referent, staff ou board.")] = "producer",
    ttl: Annotated[int, typer.Option("--ttl", help="Durée de vie en secondes.")] = 86400,
    subject: Annotated[str | None, typer.Option("--subject", help="Identifiant de la personne.")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    data_dir: DataDir = None,
) -> None:
    """Mint a local token (printed alone on standard output)."""
    _use(data_dir)
    from broker.auth.tokens import issue_local_token
    from broker.db import migrate as run_migrations
    from broker.db import session_scope
    from broker.organizations import repository

    if role not in {"producer", "referent", "staff", "board"}:
        _echo_err("erreur : rôle inconnu ; choisir producer, referent, staff ou board")
        raise typer.Exit(2)
    if role in {"producer", "referent"} and not org:
        _echo_err(f"erreur : le rôle {role} exige --org")
        raise typer.Exit(2)
    if org:
        run_migrations()
        with session_scope() as session:
            if repository.get_by_slug(session, org) is None:
                _echo_err(f"erreur : organisation inconnue « {org} » (broker org add {org} --name ...)")
                raise typer.Exit(1)
    token = issue_local_token(
        subject or f"local-{role}-{org or 'openig'}",
        org,
        role,
        ttl_seconds=ttl,
        email=email,
        username=subject,
    )
    typer.echo(token)


@categories_app.command("check")
def categories_check(
    file: Annotated[Path | None, typer.Argument(help="categories.yaml to check.")] = None,
) -> None:
    """Validate a categories.yaml (default: the one in force)."""
    from broker.classification.rules import check_file, default_rules_path

    path = file or Path(os.environ.get("BROKER_CATEGORIES") or default_rules_path())
    errors = check_file(path)
    if errors:
        _echo_err(f"{path} : {len(errors)} erreur(s)")
        for error in errors:
            _echo_err(f"  - {error}")
        raise typer.Exit(1)
    from broker.classification.rules import load_rules

    rules = load_rules(path)
    typer.echo(
        f"{path} : valide ({len(rules.needs)} besoins, {len(rules.rules)} règles, "
        f"empreinte {rules.digest[:12]})"
    )


# --------------------------------------------------------------------------------------------- producer


def _client(url: str | None, token: str | None) -> httpx.Client:
    base = url or get_settings().public_url
    if not token:
        _echo_err("erreur : un jeton est nécessaire (--token ou BROKER_TOKEN ; voir broker token issue)")
        raise typer.Exit(2)
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600)


def _submit(client: httpx.Client, path: str, manifest: Path, files: list[Path]) -> httpx.Response:
    from broker.publications.manifest import parse_manifest_text

    try:
        raw = parse_manifest_text(manifest.read_bytes())
    except Exception as exc:
        _echo_err(f"erreur : {exc}")
        raise typer.Exit(1) from exc
    handles = [f.open("rb") for f in files]
    try:
        parts: list[tuple[str, Any]] = [("manifest", (None, json.dumps(raw), "application/json"))]
        parts += [
            ("files", (f.name, h, "application/octet-stream")) for f, h in zip(files, handles, strict=True)
        ]
        return client.post(path, files=parts, headers={"X-Broker-Channel": "cli"})
    finally:
        for handle in handles:
            handle.close()


def _fail_on_error(response: httpx.Response) -> dict[str, Any]:
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {"detail": response.text}
    if response.status_code >= 400:
        _echo_err(f"erreur {response.status_code} : {body.get('detail')}")
        for field, messages in (body.get("fields") or {}).items():
            _echo_err(f"  - {field} : {'; '.join(messages) if isinstance(messages, list) else messages}")
        raise typer.Exit(1)
    return body


def _print_decision(decision: dict[str, Any]) -> None:
    typer.echo(f"catégorie : {decision.get('category')}  (règles {str(decision.get('rules_digest'))[:12]})")
    for need in decision.get("needs", []):
        platforms = ", ".join(need.get("platforms", []))
        typer.echo(f"  {need['category']}  {need['need']:<32} → {platforms:<28} [{need['rule']}]")


@app.command()
def plan(
    manifest: Path,
    files: Annotated[list[Path] | None, typer.Argument()] = None,
    url: ApiUrl = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Show the decision and every target's pre-flight report, without publishing."""
    _use(data_dir)
    with _client(url, token) as client:
        body = _fail_on_error(_submit(client, "/api/v1/plan", manifest, files or []))
    _print_decision(body["decision"])
    for target in body["decision"].get("targets", []):
        typer.echo(
            f"cible {target['target']} : {', '.join(target['needs'])}"
            + (f" (en attente : {', '.join(target['held_by'])})" if target.get("held_by") else "")
        )
    for target, problems in body.get("preflight", {}).items():
        for problem in problems:
            typer.echo(
                f"  [{target}] {problem['severity']} {problem.get('resource') or ''} {problem['message']}"
            )


TERMINAL_OR_WAITING = {"done", "failed", "cancelled", "waiting"}


@app.command()
def publish(
    manifest: Path,
    files: Annotated[list[Path] | None, typer.Argument()] = None,
    publication: Annotated[str | None, typer.Option("--publication", help="Revise this publication.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow until each delivery ends.")] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to follow at most.")] = 600.0,
    url: ApiUrl = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Publish a manifest and its files (or a new revision with --publication) and show progress."""
    _use(data_dir)
    path = f"/api/v1/publications/{publication}/revisions" if publication else "/api/v1/publications"
    with _client(url, token) as client:
        body = _fail_on_error(_submit(client, path, manifest, files or []))
        typer.echo(f"publication {body['id']} révision {body['revision']} acceptée")
        _print_decision(body["decision"])
        if not wait:
            return
        failed = _follow(client, body["id"], timeout)
    raise typer.Exit(1 if failed else 0)


def _follow(client: httpx.Client, publication_id: str, timeout: float) -> bool:
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        body = _fail_on_error(client.get(f"/api/v1/publications/{publication_id}"))
        deliveries = body.get("deliveries", [])
        for delivery in deliveries:
            state = delivery["state"]
            if seen.get(delivery["target"]) != state:
                seen[delivery["target"]] = state
                extra = f" — {delivery['last_error']}" if delivery.get("last_error") else ""
                urls = f" {' '.join(delivery.get('urls', []))}" if state == "done" else ""
                typer.echo(f"  {delivery['target']:<14} {delivery['action']:<9} {state}{extra}{urls}")
        if all(d["state"] in TERMINAL_OR_WAITING for d in deliveries) or time.monotonic() > deadline:
            return any(d["state"] == "failed" for d in deliveries)
        time.sleep(1.0)


@app.command()
def status(
    publication_id: str,
    url: ApiUrl = None,
    token: Token = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """Where a publication stands on every target."""
    _use(data_dir)
    with _client(url, token) as client:
        body = _fail_on_error(client.get(f"/api/v1/publications/{publication_id}"))
    if as_json:
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{body['title']} ({body['organization']}) — révision {body['revision']}, {body['state']}")
    _print_decision(body["decision"])
    for delivery in body["deliveries"]:
        line = (
            f"  {delivery['target']:<14} {delivery['action']:<9} {delivery['state']:<9} "
            f"tentatives {delivery['attempts']}"
        )
        if delivery.get("last_error"):
            line += f" — {delivery['last_error']}"
        typer.echo(line)
        for link in delivery.get("urls", []):
            typer.echo(f"      {link}")


@app.command()
def withdraw(publication_id: str, url: ApiUrl = None, token: Token = None, data_dir: DataDir = None) -> None:
    """Withdraw a publication from every target."""
    _use(data_dir)
    with _client(url, token) as client:
        _fail_on_error(client.delete(f"/api/v1/publications/{publication_id}"))
    typer.echo(f"retrait de {publication_id} demandé")


from broker.auth.cli import app as service_account_app  # noqa: E402
from broker.gaps import cli as gaps_cli  # noqa: E402
from broker.sftp.cli import sftp as sftp_command  # noqa: E402  (the SFTP server, registered as a command)

app.command("sftp")(sftp_command)
app.add_typer(service_account_app, name="service-account")
app.add_typer(gaps_cli.gaps_app, name="gaps")
# `broker migrate`: the publications' migration towards the national platforms (preview or start).
app.command("migrate")(gaps_cli.migrate)


def main() -> None:
    app()
