"""``keel keys``: API keys for ``keel serve`` (create, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from keel.cli._context import console, open_workspace
from keel.cli._output import add_row, local_time, print_json, table
from keel.serving._keys import SCOPES, KeyRecord
from keel.store import now

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
_SCOPE_NAMES = ", ".join(sorted(SCOPES))


def build() -> typer.Typer:
    group = typer.Typer(no_args_is_help=True, help="API keys for `keel serve`.")
    group.command("create")(create)
    group.command("list")(list_keys)
    group.command("revoke")(revoke)
    return group


def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The key's name (unique).")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope", metavar="SCOPE", help=f"What the key may do ({_SCOPE_NAMES}); repeatable."
        ),
    ],
    rate: Annotated[
        float | None,
        typer.Option(metavar="N", help="Requests per second (token refill rate)."),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(metavar="N", help="Requests allowed at once (default: one second's worth)."),
    ] = None,
    expires_in_days: Annotated[
        float | None,
        typer.Option("--expires-in-days", metavar="DAYS", help="Expire this many days from now."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print its secret, once."""
    expires_at = None if expires_in_days is None else now() + expires_in_days * 86_400
    record, secret = open_workspace(ctx).keys.create(
        name, scope, rate_per_second=rate, burst=burst, expires_at=expires_at
    )
    if as_json:
        print_json({**record.to_dict(), "secret": secret})
        return
    out = console(ctx)
    out.print(f"API key {escape(record.name)} created (id {record.id}, {_limits(record)})")
    out.print(secret)
    out.print("store this secret now: it is not kept and will not be shown again")


def list_keys(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option("--active", help="Only keys not revoked.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Every API key (never a secret)."""
    records = open_workspace(ctx).keys.list(include_revoked=not active)
    if as_json:
        print_json([record.to_dict() for record in records])
        return
    out = console(ctx)
    if not records:
        out.print("no API keys (create one with `keel keys create NAME --scope predict`)")
        return
    listing = table("id", "name", "scopes", "limit", "status", "created", "by", "expires")
    for record in records:
        add_row(
            listing,
            record.id,
            record.name,
            ",".join(sorted(record.scopes)),
            _limits(record),
            record.status(),
            local_time(record.created_at),
            record.created_by,
            local_time(record.expires_at),
        )
    out.print(listing)


def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="ID_OR_NAME", help="The key's id or name.")],
    reason: Annotated[str, typer.Option(help="Why: recorded in the audit log.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key: servers refuse it within seconds."""
    keys = open_workspace(ctx).keys
    record = keys.revoke(key, reason)
    if as_json:
        print_json(record.to_dict())
        return
    console(ctx).print(
        f"API key {escape(record.name)} (id {record.id}) revoked "
        f"{local_time(record.revoked_at)} by {escape(record.revoked_by or '')}"
    )


def _limits(record: KeyRecord) -> str:
    if record.rate_per_second is None:
        return "no rate limit"
    return f"{record.rate_per_second:g}/s, burst {record.burst}"
