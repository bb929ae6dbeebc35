"""``broker service-account``: bind OIDC machine clients to an organisation and a role.

Operator commands, like ``broker org add`` and ``broker token issue``: they work directly on the data
directory's database (no token needed), also while ``broker up`` is running. Each change is audited with
the operator's system account as the actor. Mounted by ``broker.cli``::

    app.add_typer(service_account_app, name="service-account")
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from broker.auth.settings import BROKER_ROLES

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Comptes de service (clients OIDC « client_credentials ») : commande d'exploitation, "
    "agit directement sur la base.",
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="BROKER_DATA_DIR", help="Data directory (default ./var)."),
]


@dataclass(frozen=True)
class Operator:
    """The audit actor of an operator command: the system account that ran it (no token is involved)."""

    subject: str
    organizations: tuple[str, ...] = ()
    client_id: str | None = "broker-cli"


def _operator() -> Operator:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return Operator(subject=f"operator:{user}")


def _prepare(data_dir: Path | None) -> None:
    """Point settings at the data directory and bring its schema up to date.

    Not ``broker.cli._use``: that module mounts this one, and importing it back would be circular.
    """
    from broker.config import get_settings, reset_settings
    from broker.db import migrate

    if data_dir is not None:
        os.environ["BROKER_DATA_DIR"] = str(data_dir.expanduser().resolve())
    reset_settings()
    get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate()


def _fail(exc: Exception) -> typer.Exit:
    from broker.errors import BrokerError

    if isinstance(exc, BrokerError):
        fields = f" {json.dumps(exc.fields, ensure_ascii=False)}" if exc.fields else ""
        typer.echo(f"erreur : {exc.detail}{fields}", err=True)
    else:  # pragma: no cover - only BrokerError is expected here
        typer.echo(f"erreur : {exc}", err=True)
    return typer.Exit(1)


@app.command("bind")
def bind(
    client_id: Annotated[str, typer.Argument(help="Identifiant du client OIDC (Keycloak).")],
    org: Annotated[str, typer.Option("--org", help="Slug de l'organisation (déjà enregistrée).")],
    role: Annotated[str, typer.Option("--role", help="producer, referent, staff ou board.")] = "producer",
    data_dir: DataDir = None,
) -> None:
    """Bind a client to one organisation and one role."""
    if role not in BROKER_ROLES:
        typer.echo(f"erreur : rôle inconnu « {role} » ; choisir {', '.join(BROKER_ROLES)}", err=True)
        raise typer.Exit(2)
    _prepare(data_dir)
    from broker.access import service
    from broker.db import session_scope
    from broker.errors import BrokerError
    from broker.organizations import repository as organizations

    try:
        with session_scope() as session:
            # Checked here too so the operator gets the hint to register the organisation first.
            if organizations.get_by_slug(session, org) is None:
                typer.echo(
                    f"erreur : organisation inconnue « {org} » (broker org add {org} --name ...)", err=True
                )
                raise typer.Exit(1)
            account = service.bind_service_account(session, _operator(), client_id, org, role)
            typer.echo(
                f"compte de service « {account.client_id} » rattaché à {account.organization} ({role})"
            )
    except BrokerError as exc:
        raise _fail(exc) from exc


@app.command("unbind")
def unbind(
    client_id: Annotated[str, typer.Argument(help="Identifiant du client OIDC.")],
    data_dir: DataDir = None,
) -> None:
    """Remove a client's binding: its tokens get 403 everywhere from then on."""
    _prepare(data_dir)
    from broker.access import service
    from broker.db import session_scope
    from broker.errors import BrokerError

    try:
        with session_scope() as session:
            service.unbind_service_account(session, _operator(), client_id)
    except BrokerError as exc:
        raise _fail(exc) from exc
    typer.echo(f"compte de service « {client_id} » détaché")


@app.command("list")
def list_accounts(
    org: Annotated[str | None, typer.Option("--org", help="Seulement cette organisation.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """List the bindings (client, organisation, role)."""
    _prepare(data_dir)
    from broker.access import service
    from broker.db import iso, session_scope

    with session_scope() as session:
        rows = [
            {
                "client_id": a.client_id,
                "organization": a.organization,
                "role": a.role,
                "created_at": iso(a.created_at),
            }
            for a in service.service_accounts(session, org)
        ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo("aucun compte de service", err=True)
    for row in rows:
        typer.echo(f"{row['client_id']}\t{row['organization']}\t{row['role']}")
