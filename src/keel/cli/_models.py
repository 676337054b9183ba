"""``keel models``: registered models, their versions, lifecycle, aliases, cards and audit."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from keel.cli._context import console, open_workspace
from keel.cli._output import (
    KEY_METRICS,
    add_row,
    local_time,
    mapping_table,
    metric_summary,
    print_fields,
    print_json,
    print_tables,
    read_text,
    table,
    write_text,
)
from keel.registry import ModelVersion, Registry

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The registered model's name.")]
Uri = Annotated[
    str, typer.Argument(metavar="URI", help="models:/NAME/VERSION or models:/NAME@ALIAS.")
]
Reason = Annotated[str | None, typer.Option(help="Why: recorded in the audit log.")]


def build() -> typer.Typer:
    group = typer.Typer(no_args_is_help=True, help="The model registry.")
    group.command("list")(list_models)
    group.command("show")(show)
    group.command("register")(register)
    group.command("transition")(transition)
    group.command("alias")(alias)
    group.command("card")(card)
    group.command("export")(export)
    group.command("audit")(audit)
    group.command("requirements")(requirements)
    return group


def list_models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every registered model with its latest version and aliases."""
    models = open_workspace(ctx).registry.list_models()
    if as_json:
        print_json([dataclasses.asdict(model) for model in models])
        return
    out = console(ctx)
    if not models:
        out.print("no registered models (register one with `keel models register`)")
        return
    listing = table("model", "latest", "aliases", "created", "by", "description")
    for model in models:
        add_row(
            listing,
            model.name,
            model.latest_version,
            _aliases(model.aliases),
            local_time(model.created_at),
            model.created_by,
            model.description,
        )
    out.print(listing)


def show(
    ctx: typer.Context,
    name_or_uri: Annotated[
        str,
        typer.Argument(
            metavar="NAME_OR_URI", help="A model name (all its versions) or a models:/ URI (one)."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """A model's versions, or one version in detail."""
    registry = open_workspace(ctx).registry
    if name_or_uri.startswith("models:"):
        version = registry.resolve(name_or_uri)
        if as_json:
            print_json(version.to_dict())
        else:
            _print_version(console(ctx), version)
        return
    versions = registry.list_versions(name_or_uri)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    listing = table(
        "version", "semver", "status", "aliases", "created", "by", "metrics", title=name_or_uri
    )
    for v in versions:
        add_row(
            listing,
            v.version,
            v.semver,
            v.status,
            ", ".join(v.aliases),
            local_time(v.created_at),
            v.created_by,
            metric_summary(v.metrics, KEY_METRICS),
        )
    console(ctx).print(listing)


def register(
    ctx: typer.Context,
    name: Name,
    run: Annotated[str, typer.Option("--run", help="Id of the run that logged the model.")],
    artifact: Annotated[str, typer.Option(help="Name the run logged the model under.")] = "model",
    description: Annotated[str | None, typer.Option(help="What this version is.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register the model a run logged (runs:/RUN/ARTIFACT) as the next version of NAME."""
    version = open_workspace(ctx).registry.register(
        name, f"runs:/{run}/{artifact}", description=description
    )
    if as_json:
        print_json(version.to_dict())
        return
    console(ctx).print(
        f"registered {escape(version.uri)} (semver {version.semver}, {version.status}) "
        f"from run {escape(run)}"
    )


def transition(
    ctx: typer.Context,
    name: Name,
    version: Annotated[int, typer.Argument(metavar="VERSION", help="The version number.")],
    status: Annotated[
        str, typer.Argument(metavar="STATUS", help="candidate, approved or archived.")
    ],
    reason: Reason = None,
) -> None:
    """Move a version through its lifecycle (candidate → approved → archived)."""
    moved = open_workspace(ctx).registry.transition(name, version, status, reason=reason)
    console(ctx).print(f"{escape(moved.uri)} is now {moved.status}")


def alias(
    ctx: typer.Context,
    name: Name,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion.")],
    version: Annotated[
        int | None,
        typer.Argument(metavar="VERSION", help="The version to point at (not with --delete)."),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(
            metavar="VERSION|none",
            help="Only move the alias if it still points at VERSION ('none': is not set).",
        ),
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    reason: Reason = None,
) -> None:
    """Point ALIAS of a model at VERSION (or remove it with --delete)."""
    if delete == (version is not None):
        raise typer.BadParameter(
            "give either a VERSION or --delete", param_hint="VERSION / --delete"
        )
    compare_and_set: dict[str, Any] = {}
    if expect is not None:
        if delete:
            raise typer.BadParameter("cannot be used with --delete", param_hint="--expect")
        compare_and_set["expected"] = _expected_version(expect)
    registry = open_workspace(ctx).registry
    out = console(ctx)
    if version is None:
        registry.delete_alias(name, alias_name, reason=reason)
        out.print(f"removed alias {escape(alias_name)} of {escape(name)}")
        return
    target = registry.set_alias(name, alias_name, version, reason=reason, **compare_and_set)
    out.print(f"models:/{escape(name)}@{escape(alias_name)} -> {escape(target.uri)}")


def card(
    ctx: typer.Context,
    uri: Uri,
    notes: Annotated[
        Path | None,
        typer.Option(
            help="Store this file's text as the card's notes first.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the card (Markdown) to this file.", dir_okay=False)
    ] = None,
) -> None:
    """A version's model card, as Markdown."""
    registry = open_workspace(ctx).registry
    version = registry.resolve(uri)
    if notes is not None:
        registry.set_card_notes(version.name, version.version, read_text(str(notes)))
    text = registry.card(version.uri)
    if output is None:
        typer.echo(text)
        return
    write_text(str(output), text)
    console(ctx).print(f"wrote the card of {escape(version.uri)} to {escape(str(output))}")


def export(
    ctx: typer.Context,
    uri: Uri,
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write it.", file_okay=False)
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty directory.")
    ] = False,
) -> None:
    """Write a version as a self-contained directory (model, requirements, signature, card)."""
    registry = open_workspace(ctx).registry
    version = registry.resolve(uri)
    written = registry.export(version.uri, directory, force=force)
    console(ctx).print(
        f"exported {escape(version.uri)} to {escape(str(written))} "
        f"({', '.join(sorted(p.name for p in written.iterdir()))})"
    )


def audit(
    ctx: typer.Context,
    name: Name,
    version: Annotated[int | None, typer.Option(help="Only this version's entries.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Who changed what, when and why, oldest first."""
    registry = open_workspace(ctx).registry
    _require(registry, name, version)
    entries = registry.audit_log(name, version)
    if as_json:
        print_json([dataclasses.asdict(entry) for entry in entries])
        return
    log = table("when", "who", "what", "action", "change", "reason")
    for entry in entries:
        change = ""
        if entry.from_value or entry.to_value:
            change = f"{entry.from_value or '∅'} → {entry.to_value or '∅'}"
        add_row(
            log,
            local_time(entry.at),
            entry.actor,
            entry.entity_key,
            entry.action,
            change,
            entry.reason,
        )
    console(ctx).print(log)


def requirements(ctx: typer.Context, uri: Uri) -> None:
    """The pip requirements (requirements.txt lines) to load a version."""
    version = open_workspace(ctx).registry.resolve(uri)
    for line in version.requirements:
        typer.echo(line)


# -- helpers -----------------------------------------------------------------------------------


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{name}→{version}" for name, version in sorted(aliases.items()))


def _expected_version(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise typer.BadParameter(
            f"'{text}' is not a version number or 'none'", param_hint="--expect"
        )
    return int(text)


def _require(registry: Registry, name: str, version: int | None) -> None:
    """Fail with ModelNotFound / ModelVersionNotFound rather than list nothing."""
    if version is not None:
        registry.get_version(name, version)
    else:
        registry.list_versions(name)


def _print_version(out: Console, version: ModelVersion) -> None:
    print_fields(
        out,
        [
            ("model", version.uri),
            ("semver", version.semver),
            ("status", version.status),
            ("aliases", ", ".join(version.aliases) or "none"),
            ("description", version.description),
            ("flavor", version.flavor),
            ("artifact", f"sha256:{version.artifact_digest} ({version.artifact_size:,} bytes)"),
            ("run", version.run_id),
            ("registered", f"{local_time(version.created_at)} by {version.created_by}"),
            ("output", _output(version.signature.output)),
        ],
    )
    inputs = table("input", "type", "nullable", title="Signature inputs")
    for field in version.signature.inputs.fields:
        add_row(inputs, field.name, field.dtype, "yes" if field.nullable else "no")
    print_tables(
        out,
        mapping_table("Metrics", version.metrics),
        mapping_table("Params", version.params),
        mapping_table("Inputs (data fingerprints)", version.inputs, value="fingerprint"),
        mapping_table("Requirements", version.library_versions, value="version"),
        inputs,
    )


def _output(output: dict[str, Any]) -> str:
    text = f"{output.get('task')}, {output.get('dtype')}"
    if output.get("classes") is not None:
        text += f", classes {output['classes']}"
    return text
