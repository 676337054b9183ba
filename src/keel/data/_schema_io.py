"""Schema files: the YAML and JSON text a :class:`~keel.data.Schema` is written to and read from.

This module deals in the plain mapping of ``Schema.to_dict``/``Schema.from_dict``, so it needs
nothing from the schema module; the ``Schema`` methods (``to_yaml``, ``from_yaml``, ``load``, ...)
are thin wrappers over it:

    text = dump_yaml(schema.to_dict())
    schema = Schema.from_dict(parse_file("contract.yaml"), checks)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from keel.errors import SchemaError

YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)


def dump_yaml(data: Mapping[str, Any]) -> str:
    """``data`` as block-style YAML, keys in their order, that reads back to ``data``."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if yaml.safe_load(text) != data:  # PyYAML mangles a few characters (NEL, LS, PS) unescaped
        text = yaml.safe_dump(data, sort_keys=False)
    return text


def dump_json(data: Mapping[str, Any]) -> str:
    """``data`` as indented JSON."""
    return json.dumps(data, indent=2)


def parse_yaml(source: str | Path) -> Any:
    """The data in YAML text or a ``.yaml``/``.yml`` file (see :func:`_read_source`)."""
    text = _read_source(source, YAML_SUFFIXES)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SchemaError(f"the schema is not valid YAML: {error}") from error


def parse_json(source: str | Path) -> Any:
    """The data in JSON text or a ``.json`` file (see :func:`_read_source`)."""
    text = _read_source(source, JSON_SUFFIXES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(f"the schema is not valid JSON: {error}") from error


def parse_file(path: str | Path) -> Any:
    """The data in a schema file, read as YAML or JSON by its suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in YAML_SUFFIXES:
        return parse_yaml(path)
    if suffix in JSON_SUFFIXES:
        return parse_json(path)
    raise SchemaError(f"{path}: a schema file ends in .yaml, .yml or .json")


def _read_source(source: str | Path, suffixes: tuple[str, ...]) -> str:
    """The text of ``source``: a Path, a one-line string naming a file with one of ``suffixes``,
    or the text itself."""
    is_path = isinstance(source, Path) or (
        "\n" not in source and Path(source).suffix.lower() in suffixes
    )
    if not is_path:
        return str(source)
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise SchemaError(f"cannot read the schema file {source}: {error}") from error
