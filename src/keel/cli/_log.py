"""``keel log``: SQL over the prediction log, and one prediction with its feedback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from keel.cli._context import console, open_workspace
from keel.cli._output import add_row, print_fields, print_json, print_tables, table
from keel.errors import PredictionNotFound
from keel.serving._predlog import LogReader

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def build() -> typer.Typer:
    group = typer.Typer(
        no_args_is_help=True,
        help="The prediction log: SQL over logged predictions and feedback.",
    )
    group.command("query")(query)
    group.command("show")(show)
    return group


def _log_dir(ctx: typer.Context) -> Path:
    settings = open_workspace(ctx).settings
    return settings.project_path(settings.serving.prediction_log_dir)


def query(
    ctx: typer.Context,
    sql: Annotated[
        str,
        typer.Argument(
            metavar="SQL",
            help="DuckDB SQL over the views `predictions` and `feedback`, e.g. "
            '"SELECT endpoint, count(*) FROM predictions GROUP BY endpoint".',
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Run SQL over every logged prediction and feedback entry, compacted or not yet."""
    result = LogReader(_log_dir(ctx)).query(sql)
    rows = [{name: _plain(value) for name, value in row.items()} for row in result.to_pylist()]
    if as_json:
        print_json(rows)
        return
    listing = table(*result.column_names)
    for row in rows:
        add_row(listing, *(_cell(value) for value in row.values()))
    console(ctx).print(listing)


def show(
    ctx: typer.Context,
    prediction_id: Annotated[
        str, typer.Argument(metavar="PREDICTION_ID", help="The id a prediction response carried.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """One logged prediction, with its inputs, outputs and the feedback attached to it."""
    directory = _log_dir(ctx)
    found = LogReader(directory).prediction_with_feedback(prediction_id)
    if found is None:
        raise PredictionNotFound(prediction_id, str(directory))
    prediction = {name: _plain(value) for name, value in found["prediction"].items()}
    feedback = [{name: _plain(value) for name, value in f.items()} for f in found["feedback"]]
    shadows = [{name: _plain(value) for name, value in s.items()} for s in found["shadows"]]
    if as_json:
        print_json({"prediction": prediction, "shadows": shadows, "feedback": feedback})
        return
    out = console(ctx)
    version = prediction["model_version"]
    print_fields(
        out,
        [
            ("prediction", prediction["prediction_id"]),
            ("time", prediction["time"]),
            ("endpoint", prediction["endpoint"]),
            ("model", f"{prediction['model']} version {version}" if version else None),
            ("revision", prediction["revision"]),
            ("latency", f"{prediction['latency_ms']:.3f} ms" if prediction["latency_ms"] else ""),
            ("arm", prediction["arm"]),
            ("cache hit", prediction["cache_hit"]),
            ("fallback", prediction["fallback"]),
            ("shadow", "yes" if prediction["shadow"] else None),
            ("output", _cell(prediction["prediction"])),
            ("probabilities", _cell(prediction["probabilities"])),
        ],
    )
    inputs = table("field", "value", title="Inputs")
    for name, value in (prediction["inputs"] or {}).items():
        add_row(inputs, name, _cell(value))
    outcomes = table("time", "name", "value", title="Feedback")
    for entry in feedback:
        add_row(outcomes, entry["time"], entry["name"], _cell(entry["value"]))
    compared = table("shadow model", "output", "probabilities", "latency", title="Shadows")
    for entry in shadows:
        add_row(
            compared,
            f"{entry['model']} version {entry['model_version']}",
            _cell(entry["prediction"]),
            _cell(entry["probabilities"]),
            f"{entry['latency_ms']:.3f} ms" if entry["latency_ms"] else "",
        )
    print_tables(out, inputs, compared, outcomes)
    if not feedback:
        out.print("\nno feedback yet")


def _plain(value: Any) -> Any:
    """Times as ISO-8601 text (nanoseconds kept), everything else as it is."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value
