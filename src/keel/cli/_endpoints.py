"""``keel endpoints``: endpoints and their deployment revisions (create, change, roll back)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from keel.cli._context import console, open_workspace
from keel.cli._output import add_row, local_time, print_fields, print_json, table
from keel.serving import DefaultPrediction, Endpoint, PinnedModel, Revision, TrafficPolicy

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The endpoint's name.")]
Reason = Annotated[str | None, typer.Option(help="Why: recorded with the revision and audited.")]
MaxBatchSize = Annotated[
    int | None,
    typer.Option(
        metavar="N", help="Most rows a micro-batch groups (default 32).", show_default=False
    ),
]
MaxBatchWait = Annotated[
    float | None,
    typer.Option(
        "--max-batch-wait-ms",
        metavar="MS",
        help="Longest a micro-batch waits for company, in ms; 0 turns batching off (default 2).",
        show_default=False,
    ),
]
TimeoutMs = Annotated[
    int | None,
    typer.Option(
        "--timeout-ms", metavar="MS", help="Bound on a prediction, in ms.", show_default=False
    ),
]
Features = Annotated[
    bool | None,
    typer.Option(
        "--features/--no-features",
        help="Let requests carry only entity keys; features come from the feature store.",
        show_default=False,
    ),
]


Cache = Annotated[
    bool | None,
    typer.Option(
        "--cache/--no-cache",
        help="Answer records the model version already answered from the prediction cache.",
        show_default=False,
    ),
]
Arms = Annotated[
    list[str] | None,
    typer.Option(
        "--arm",
        metavar="URI=WEIGHT",
        help="Split traffic: this model version gets WEIGHT / (sum of weights) of the requests, "
        "the same X-Keel-Routing-Key always the same arm (repeat for each arm).",
        show_default=False,
    ),
]
FallbackModel = Annotated[
    str | None,
    typer.Option(
        "--fallback-model",
        metavar="URI",
        help="A model that answers when the primary raises, times out or its breaker is open.",
        show_default=False,
    ),
]
FallbackValue = Annotated[
    str | None,
    typer.Option(
        "--fallback-value",
        metavar="JSON",
        help="A fixed prediction (a JSON value) that answers when the primary cannot.",
        show_default=False,
    ),
]
Shadows = Annotated[
    list[str] | None,
    typer.Option(
        "--shadow",
        metavar="URI",
        help="A model version that gets a copy of every request in the background: its answers "
        "are logged next to the primary's, never returned (repeat for each shadow).",
    ),
]
RoutingField = Annotated[
    str | None,
    typer.Option(
        help="The request field whose value picks the arm when a request has no "
        "X-Keel-Routing-Key header (e.g. customer_id)."
    ),
]


def build() -> typer.Typer:
    group = typer.Typer(no_args_is_help=True, help="Serving endpoints and their deployments.")
    group.command("create")(create)
    group.command("show")(show)
    group.command("set")(set_endpoint)
    group.command("list")(list_endpoints)
    group.command("history")(history)
    group.command("rollback")(rollback)
    return group


def create(
    ctx: typer.Context,
    name: Name,
    model: Annotated[
        str,
        typer.Option(
            "--model", metavar="URI", help="models:/NAME/VERSION or models:/NAME@ALIAS to serve."
        ),
    ],
    description: Annotated[str | None, typer.Option(help="What the endpoint is for.")] = None,
    max_batch_size: MaxBatchSize = None,
    max_batch_wait_ms: MaxBatchWait = None,
    timeout_ms: TimeoutMs = None,
    features: Features = None,
    cache: Cache = None,
    arm: Arms = None,
    shadow: Shadows = None,
    routing_field: RoutingField = None,
    fallback_model: FallbackModel = None,
    fallback_value: FallbackValue = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Create endpoint NAME serving a model version (its revision 1)."""
    options = _options(max_batch_size, max_batch_wait_ms, timeout_ms, features, cache)
    if routing_field is not None:
        options["routing_field"] = routing_field
    fallback = _fallback_option(fallback_model, fallback_value)
    revision = open_workspace(ctx).deployments.create_endpoint(
        name,
        model,
        description=description,
        reason=reason,
        fallback=None if fallback is _KEEP else fallback,
        arms=_arms_option(arm or []),
        shadows=shadow or [],
        **options,
    )
    _report(ctx, revision, as_json, "created")


def show(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """An endpoint and the policy of its live revision."""
    endpoint = open_workspace(ctx).deployments.get(name)
    if as_json:
        print_json(endpoint.to_dict())
        return
    _print_endpoint(console(ctx), endpoint)


def set_endpoint(
    ctx: typer.Context,
    name: Name,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="URI",
            help="Serve this model URI instead (an alias is resolved and pinned now).",
        ),
    ] = None,
    max_batch_size: MaxBatchSize = None,
    max_batch_wait_ms: MaxBatchWait = None,
    timeout_ms: TimeoutMs = None,
    no_timeout: Annotated[
        bool, typer.Option("--no-timeout", help="Remove the prediction time bound.")
    ] = False,
    features: Features = None,
    cache: Cache = None,
    arm: Arms = None,
    shadow: Shadows = None,
    routing_field: RoutingField = None,
    fallback_model: FallbackModel = None,
    fallback_value: FallbackValue = None,
    no_fallback: Annotated[
        bool, typer.Option("--no-fallback", help="Remove the endpoint's fallback.")
    ] = False,
    no_arms: Annotated[
        bool, typer.Option("--no-arms", help="Stop splitting traffic: the primary answers.")
    ] = False,
    no_shadows: Annotated[
        bool, typer.Option("--no-shadows", help="Stop mirroring requests to shadow versions.")
    ] = False,
    no_routing_field: Annotated[
        bool, typer.Option("--no-routing-field", help="Route by the header only (or at random).")
    ] = False,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an endpoint: a new revision, unless nothing changes."""
    if no_timeout and timeout_ms is not None:
        raise typer.BadParameter("cannot be used with --timeout-ms", param_hint="--no-timeout")
    options = _options(max_batch_size, max_batch_wait_ms, timeout_ms, features, cache)
    if no_timeout:
        options["timeout_ms"] = None
    fallback = _fallback_option(fallback_model, fallback_value)
    if no_fallback:
        if fallback is not _KEEP:
            raise typer.BadParameter(
                "cannot be used with --fallback-model or --fallback-value",
                param_hint="--no-fallback",
            )
        fallback = None
    if fallback is not _KEEP:
        options["fallback"] = fallback
    if arm and no_arms:
        raise typer.BadParameter("cannot be used with --arm", param_hint="--no-arms")
    if arm or no_arms:
        options["arms"] = _arms_option(arm or [])
    if shadow and no_shadows:
        raise typer.BadParameter("cannot be used with --shadow", param_hint="--no-shadows")
    if shadow or no_shadows:
        options["shadows"] = shadow or []
    if routing_field is not None and no_routing_field:
        raise typer.BadParameter(
            "cannot be used with --routing-field", param_hint="--no-routing-field"
        )
    if routing_field is not None or no_routing_field:
        options["routing_field"] = routing_field
    deployments = open_workspace(ctx).deployments
    before = deployments.get(name).revision.number
    revision = deployments.set(name, model_uri=model, reason=reason, **options)
    _report(ctx, revision, as_json, "unchanged" if revision.number == before else "updated")


def list_endpoints(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every endpoint with the model version it serves."""
    endpoints = open_workspace(ctx).deployments.list()
    if as_json:
        print_json([endpoint.to_dict() for endpoint in endpoints])
        return
    out = console(ctx)
    if not endpoints:
        out.print("no endpoints (create one with `keel endpoints create NAME --model URI`)")
        return
    listing = table("endpoint", "revision", "serves", "set from", "changed", "by", "description")
    for endpoint in endpoints:
        revision, primary = endpoint.revision, endpoint.policy.primary
        add_row(
            listing,
            endpoint.name,
            revision.number,
            primary.pinned_uri,
            primary.uri,
            local_time(revision.created_at),
            revision.created_by,
            endpoint.description,
        )
    out.print(listing)


def history(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Every revision of an endpoint, oldest first."""
    revisions = open_workspace(ctx).deployments.history(name)
    if as_json:
        print_json([revision.to_dict() for revision in revisions])
        return
    log = table("revision", "action", "serves", "set from", "options", "when", "who", "reason")
    for revision in revisions:
        policy = revision.policy
        add_row(
            log,
            revision.number,
            revision.action,
            policy.primary.pinned_uri,
            policy.primary.uri,
            _options_summary(policy),
            local_time(revision.created_at),
            revision.created_by,
            revision.reason,
        )
    console(ctx).print(log)


def rollback(
    ctx: typer.Context,
    name: Name,
    to: Annotated[
        int | None,
        typer.Option(metavar="N", help="The revision whose policy to restore (default: previous)."),
    ] = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore an earlier revision's policy, as a new revision."""
    deployments = open_workspace(ctx).deployments
    before = deployments.get(name).revision.number
    revision = deployments.rollback(name, to, reason=reason)
    _report(ctx, revision, as_json, "unchanged" if revision.number == before else "rolled back")


# -- helpers -----------------------------------------------------------------------------------


_KEEP: Any = object()


def _arms_option(values: list[str]) -> list[tuple[str, float]]:
    arms: list[tuple[str, float]] = []
    for value in values:
        uri, sep, weight = value.rpartition("=")
        try:
            arms.append((uri, float(weight)))
        except ValueError:
            sep = ""
        if not sep or not uri:
            raise typer.BadParameter(
                f"{value!r} is not URI=WEIGHT (e.g. models:/churn/4=10)", param_hint="--arm"
            )
    return arms


def _fallback_option(model: str | None, value: str | None) -> Any:
    """The fallback the options name: a model URI, a DefaultPrediction, or _KEEP (none given)."""
    if model is not None and value is not None:
        raise typer.BadParameter(
            "give --fallback-model or --fallback-value, not both", param_hint="--fallback-value"
        )
    if model is not None:
        return model
    if value is None:
        return _KEEP
    try:
        return DefaultPrediction(json.loads(value))
    except json.JSONDecodeError as error:
        raise typer.BadParameter(
            f"{value!r} is not a JSON value ({error.msg}); quote strings: '\"yes\"'",
            param_hint="--fallback-value",
        ) from None


def _options(
    max_batch_size: int | None,
    max_batch_wait_ms: float | None,
    timeout_ms: int | None,
    features: bool | None,
    cache: bool | None,
) -> dict[str, Any]:
    """The serving options given on the command line (those left out keep their value)."""
    given = {
        "max_batch_size": max_batch_size,
        "max_batch_wait_ms": max_batch_wait_ms,
        "timeout_ms": timeout_ms,
        "features": features,
        "cache": cache,
    }
    return {key: value for key, value in given.items() if value is not None}


def _report(ctx: typer.Context, revision: Revision, as_json: bool, what: str) -> None:
    if as_json:
        print_json(revision.to_dict())
        return
    primary = revision.policy.primary
    source = f" (from {primary.uri})" if primary.uri != primary.pinned_uri else ""
    console(ctx).print(
        f"endpoint {escape(revision.endpoint)} {what}: revision {revision.number} serves "
        f"{escape(primary.pinned_uri)}{escape(source)}"
    )


def _options_summary(policy: TrafficPolicy) -> str:
    batching = (
        f"batch ≤{policy.max_batch_size} / {policy.max_batch_wait_ms:g} ms"
        if policy.max_batch_wait_ms > 0
        else "no batching"
    )
    parts = [batching]
    if policy.timeout_ms is not None:
        parts.append(f"timeout {policy.timeout_ms} ms")
    if policy.features:
        parts.append("features")
    if policy.cache:
        parts.append("cache")
    return ", ".join(parts)


def _print_endpoint(out: Console, endpoint: Endpoint) -> None:
    revision, policy = endpoint.revision, endpoint.policy
    print_fields(
        out,
        [
            ("endpoint", endpoint.name),
            ("description", endpoint.description),
            ("revision", f"{revision.number} ({revision.action})"),
            ("serves", policy.primary.pinned_uri),
            ("set from", policy.primary.uri),
            ("shadows", ", ".join(shadow.pinned_uri for shadow in policy.shadows)),
            ("arms", ", ".join(f"{a.model.pinned_uri}={a.weight:g}" for a in policy.arms)),
            ("routing field", policy.routing_field),
            ("fallback", _fallback(policy)),
            ("batching", _options_summary(policy).split(", ")[0]),
            ("timeout", "none" if policy.timeout_ms is None else f"{policy.timeout_ms} ms"),
            ("features", "from the feature store" if policy.features else "in the request"),
            ("changed", f"{local_time(revision.created_at)} by {revision.created_by}"),
            ("reason", revision.reason),
            ("created", f"{local_time(endpoint.created_at)} by {endpoint.created_by}"),
        ],
    )


def _fallback(policy: TrafficPolicy) -> str | None:
    if isinstance(policy.fallback, PinnedModel):
        return policy.fallback.pinned_uri
    if isinstance(policy.fallback, DefaultPrediction):
        return f"the prediction {policy.fallback.value!r}"
    return None
