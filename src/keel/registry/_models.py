"""Registry records and model URIs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from keel._packaging import Signature
from keel.errors import InvalidModelURI, RegistryError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,254}$")
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")


def check_model_name(name: str) -> str:
    if not _NAME.match(name):
        raise RegistryError(
            f"'{name}' is not a valid model name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias):
        raise RegistryError(
            f"'{alias}' is not a valid alias: start with a letter, then letters, digits, "
            "'_' or '-' (numbers alone would be confused with versions)"
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: a name and exactly one of version or alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``."""
        match = _URI.match(uri.strip())
        if match is None:
            raise InvalidModelURI(uri)
        name, version, alias = match.group("name", "version", "alias")
        if version is not None:
            if not version.isdigit() or int(version) < 1:
                raise InvalidModelURI(uri)
            return cls(name=name, version=int(version))
        return cls(name=name, alias=alias)

    def __str__(self) -> str:
        return (
            f"models:/{self.name}/{self.version}"
            if self.version
            else f"models:/{self.name}@{self.alias}"
        )


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model and everything recorded with it."""

    name: str
    version: int
    semver: str
    status: str
    flavor: str
    artifact_digest: str
    artifact_size: int
    library_versions: dict[str, str]
    signature: Signature
    metrics: dict[str, float]
    params: dict[str, str]
    run_id: str | None
    inputs: dict[str, str]
    description: str | None
    card_notes: str | None
    created_at: float
    created_by: str
    aliases: list[str] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    """Feature-store features the version was trained on, with their view versions."""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def requirements(self) -> list[str]:
        return [f"{package}=={version}" for package, version in self.library_versions.items()]

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["signature"] = self.signature.to_dict()
        data["uri"] = self.uri
        return data


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    created_at: float
    created_by: str
    description: str | None
    latest_version: int
    aliases: dict[str, int]


@dataclass(frozen=True)
class AuditEntry:
    """One append-only record of a change: who, when, what, from, to, why."""

    id: int
    at: float
    actor: str
    entity: str
    entity_key: str
    action: str
    from_value: str | None
    to_value: str | None
    reason: str | None
