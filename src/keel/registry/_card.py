"""Model cards: Markdown generated from what the registry recorded, plus free-text notes."""

from __future__ import annotations

import datetime as dt

from keel.registry._models import AuditEntry, ModelVersion
from keel.tracking import RunRecord

NOTES_HEADING = "## Notes"
_NOTES_PLACEHOLDER = (
    "_Intended use, limitations, ethical considerations, caveats. "
    "Edit with `keel models card URI --notes FILE`._"
)


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_card(version: ModelVersion, run: RunRecord | None, history: list[AuditEntry]) -> str:
    """The model card of ``version`` as Markdown."""
    lines = [f"# {version.name} — version {version.version} ({version.semver})", ""]
    if version.description:
        lines += [version.description, ""]
    aliases = ", ".join(f"`{a}`" for a in version.aliases) or "none"
    lines += [
        f"- **Status:** {version.status}",
        f"- **Aliases:** {aliases}",
        f"- **Registered:** {_when(version.created_at)} by {version.created_by}",
        f"- **Flavor:** {version.flavor} "
        f"({', '.join(f'{k} {v}' for k, v in version.library_versions.items())})",
        f"- **Artifact:** `sha256:{version.artifact_digest}` ({version.artifact_size:,} bytes)",
        f"- **URI:** `{version.uri}`",
        "",
        "## Signature",
        "",
        "| input | type | nullable |",
        "|---|---|---|",
    ]
    lines += [
        f"| {_cell(f.name)} | {f.dtype} | {'yes' if f.nullable else 'no'} |"
        for f in version.signature.inputs.fields
    ]
    output = version.signature.output
    lines += ["", f"Output: {output.get('task')}, {output.get('dtype')}"]
    if output.get("classes") is not None:
        lines[-1] += f", classes {output['classes']}"
    lines.append("")
    if version.metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {v:.6g} |" for k, v in sorted(version.metrics.items())]
        lines.append("")
    if version.params:
        lines += ["## Parameters", "", "| param | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(version.params.items())]
        lines.append("")
    lines += ["## Lineage", ""]
    if run is not None:
        lines.append(f"- **Run:** `{run.id}` ({run.name}, experiment `{run.experiment}`)")
        commit = run.code_commit or "not in a git tree"
        if run.code_dirty_hash:
            commit += f" + uncommitted changes `{run.code_dirty_hash[:12]}`"
        lines.append(f"- **Code:** {commit}")
        python = run.environment.get("python")
        if python:
            lines.append(f"- **Python:** {python} on {run.environment.get('platform')}")
        if run.seeds:
            lines.append(f"- **Seed:** {run.seeds.get('seed')}")
    else:
        lines.append("- Registered directly, not from a tracked run.")
    for name, digest in sorted(version.inputs.items()):
        lines.append(f"- **Data `{_cell(name)}`:** fingerprint `{digest}`")
    if version.features:
        lines += ["", "## Features", "", "| feature | from |", "|---|---|"]
        for item in version.features:
            origin = (
                f"on demand from {', '.join(item.get('inputs', []))}"
                if item.get("on_demand")
                else f"view `{item.get('view')}` version {item.get('view_version')}"
            )
            lines.append(f"| {_cell(item.get('feature'))} | {_cell(origin)} |")
    lines += ["", "## Requirements", "", "```", *version.requirements, "```", ""]
    if history:
        lines += ["## History", "", "| when | who | what | reason |", "|---|---|---|---|"]
        for entry in history:
            change = entry.action
            if entry.from_value or entry.to_value:
                change += f" {entry.from_value or '∅'} → {entry.to_value or '∅'}"
            lines.append(
                f"| {_when(entry.at)} | {_cell(entry.actor)} | {_cell(change)} "
                f"| {_cell(entry.reason or '')} |"
            )
        lines.append("")
    lines += [NOTES_HEADING, "", version.card_notes or _NOTES_PLACEHOLDER, ""]
    return "\n".join(lines)
