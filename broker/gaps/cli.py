"""Operator commands of the gap register and of migrations: they work on the data directory's database (no
token needed), also while the broker runs. Registered in ``broker.cli``::

    app.add_typer(gaps_cli.gaps_app, name="gaps")
    app.command("migrate")(gaps_cli.migrate)   # publications' migration; the schema: `broker db upgrade`
"""

from __future__ import annotations

import getpass
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

gaps_app = typer.Typer(
    help="Lacunes nationales (commande d'exploitation : agit directement sur la base).", no_args_is_help=True
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="BROKER_DATA_DIR", help="Data directory (default ./var)."),
]
GapRef = Annotated[
    str, typer.Argument(help="Identifiant de la lacune, ou besoin/plateforme (ogc_api/geoplateforme).")
]
Reason = Annotated[str, typer.Option("--reason", help="Pourquoi (obligatoire, gardé dans l'historique).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]


def _prepare(data_dir: Path | None) -> None:
    """Point the settings at the data directory, bring the schema up to date, and the register in line with
    categories.yaml (what the API does when it starts)."""
    from broker.cli import _use
    from broker.db import migrate as run_migrations
    from broker.gaps import service

    _use(data_dir)
    run_migrations()
    service.sync_at_startup()


def _operator() -> Any:
    from broker.gaps.service import Operator

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operateur"
    return Operator(subject=f"cli:{user}")


def _fail(exc: Exception) -> None:
    from broker.errors import BrokerError

    if isinstance(exc, BrokerError):
        fields = f" {json.dumps(exc.fields, ensure_ascii=False)}" if exc.fields else ""
        typer.echo(f"erreur : {exc.detail}{fields}", err=True)
        raise typer.Exit(1) from exc
    raise exc


def _line(gap: dict[str, Any]) -> str:
    late = f" EN RETARD de {gap['days_late']} j" if gap["late"] else ""
    probe = " (la sonde la dit livrée)" if gap.get("looks_delivered") else ""
    return (
        f"{gap['id']}  {gap['need']}/{gap['platform']:<13}  {gap['status']:<9}  "
        f"cible {gap['target_date'] or '—':<10}  attente {gap['interim']:<8}  "
        f"{gap['waiting_publications']:>5} publication(s){late}{probe}"
    )


@gaps_app.command("list")
def gaps_list(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List the gaps: status, target date, interim policy, publications waiting."""
    _prepare(data_dir)
    from broker.db import session_scope
    from broker.gaps import service

    with session_scope() as session:
        gaps = service.list_view(session)
    if as_json:
        typer.echo(json.dumps(gaps, ensure_ascii=False, indent=2))
        return
    if not gaps:
        typer.echo("aucune lacune")
    for gap in gaps:
        typer.echo(_line(gap))


@gaps_app.command("show")
def gaps_show(gap: GapRef, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """One gap: its history and the publications waiting on it."""
    _prepare(data_dir)
    from broker.db import session_scope
    from broker.gaps import service

    try:
        with session_scope() as session:
            body = service.detail_view(session, service.get(session, gap))
    except Exception as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    typer.echo(_line(body))
    typer.echo(
        f"  {body['need_title']} sur {body['platform_title']} ; suivi {body['upstream'] or 'aucun ticket'}"
    )
    typer.echo("historique :")
    for entry in body["history"]:
        reason = f" — {entry['reason']}" if entry["reason"] else ""
        typer.echo(
            f"  {entry['at']}  {entry['by']}  {entry['change']} : {entry['from']} → {entry['to']}{reason}"
        )
    typer.echo(f"publications en attente ({body['waiting_publications']}) :")
    for publication in body["publications"]:
        typer.echo(
            f"  {publication['id']}  {publication['organization']}  {publication['title']}"
            f"  (en attendant : {publication['served_by']})"
        )
    for job in body["migrations"]:
        typer.echo(
            f"migration {job['id']} : {job['state']}, {job['done']}/{job['total']} faites, "
            f"{job['failed']} en échec, {job['waiting']} en attente"
        )


def _change(data_dir: Path | None, gap: str, changes: dict[str, Any]) -> None:
    _prepare(data_dir)
    from broker.db import session_scope
    from broker.gaps import service
    from broker.gaps.schemas import GapPatch

    try:
        with session_scope() as session:
            found = service.get(session, gap)
            service.update(session, _operator(), found, GapPatch(**changes))
            gap_id = found.id
        with session_scope() as session:
            body = service.detail_view(session, service.get(session, gap_id))
    except Exception as exc:
        _fail(exc)
        return
    typer.echo(_line(body))
    for job in body["migrations"]:
        if job["state"] == "running":
            typer.echo(f"migration {job['id']} lancée : {job['total']} publication(s) à déplacer")


@gaps_app.command("slip")
def gaps_slip(
    gap: GapRef,
    to: Annotated[str, typer.Option("--to", help="Nouvelle date cible (AAAA-MM-JJ).")],
    reason: Reason,
    data_dir: DataDir = None,
) -> None:
    """Move a gap's target date (the slip is kept in its history)."""
    try:
        target = date.fromisoformat(to)
    except ValueError:
        typer.echo(f"erreur : date invalide « {to} » (AAAA-MM-JJ)", err=True)
        raise typer.Exit(2) from None
    _change(data_dir, gap, {"target_date": target, "reason": reason})


@gaps_app.command("deliver")
def gaps_deliver(gap: GapRef, reason: Reason, data_dir: DataDir = None) -> None:
    """Mark a gap delivered: its need becomes A on that platform, and a migration starts."""
    _change(data_dir, gap, {"status": "delivered", "reason": reason})


@gaps_app.command("drop")
def gaps_drop(gap: GapRef, reason: Reason, data_dir: DataDir = None) -> None:
    """Drop a gap: the platform will not answer the need (it becomes C there)."""
    _change(data_dir, gap, {"status": "dropped", "reason": reason})


def migrate(
    data_dir: DataDir = None,
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Montrer les publications à migrer et ce qui arriverait, sans agir."),
    ] = False,
    gap: Annotated[
        str | None, typer.Option("--gap", help="Une lacune (identifiant ou besoin/plateforme).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Migrate publications to the national platforms: preview with --plan (the default without --gap), or
    start the migration of one delivered gap with --gap (resumable; progress: GET /api/v1/migrations)."""
    from broker.cli import _use
    from broker.db import migrate as run_migrations

    _use(data_dir)
    run_migrations()  # idempotent: the schema must be there before the gap register is read
    from broker.gaps import service as gaps

    gaps.sync_at_startup()
    if plan or gap is None:
        _plan(gap, as_json)
    else:
        _start(gap)


def _plan(gap: str | None, as_json: bool) -> None:
    from broker.db import session_scope
    from broker.gaps import service as gaps
    from broker.migration import service as migration

    previews = []
    try:
        with session_scope() as session:
            if gap is not None:
                refs = [gaps.get(session, gap).id]
            else:
                refs = [g["id"] for g in gaps.list_view(session) if g["waiting_publications"]]
            previews = [migration.preview(session, gap_id=ref) for ref in refs]
            session.rollback()  # a plan writes nothing
    except Exception as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(previews, ensure_ascii=False, indent=2))
        return
    if not previews:
        typer.echo("aucune publication n'attend une lacune : rien à migrer")
    for preview in previews:
        status = (
            "livrée" if preview["gap_status"] == "delivered" else f"{preview['gap_status']}, supposée livrée"
        )
        typer.echo(
            f"lacune {preview['need']}/{preview['platform']} ({status}) : {preview['total']} publication(s), "
            f"{preview['would_move']} passeraient en A"
            + ("" if preview["target_configured"] else f" — {preview['platform']} n'est pas configurée ici")
        )
        for item in preview["publications"]:
            typer.echo(
                f"  {item['id']}  {item['organization']}  {item['title']}  "
                f"[{item['current_category']} → {item['new_category']}]"
            )
            for action in item["actions"]:
                typer.echo(f"      - {action}")


def _start(gap: str) -> None:
    from broker.db import session_scope
    from broker.gaps import service as gaps
    from broker.migration import service as migration

    try:
        with session_scope() as session:
            found = gaps.get(session, gap)
            job = migration.start_for_gap(
                session, _operator(), found, reason="lancée par la ligne de commande"
            )
            job_id = job.id
        with session_scope() as session:
            body = migration.summary(session, migration.get(session, job_id))
    except Exception as exc:
        _fail(exc)
        return
    typer.echo(f"migration {body['id']} : {body['state']}, {body['total']} publication(s)")
