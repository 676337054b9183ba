"""A registered version as a self-contained directory, and loading it back."""

from __future__ import annotations

import json
from pathlib import Path

from keel.artifacts import sha256_hex
from keel.errors import ArtifactCorrupted, KeelError
from keel.flavors import LoadedModel, load_model
from keel.registry._models import ModelVersion

MODEL_FILE = "model.bin"
METADATA_FILE = "keel-model.json"


def write_export(
    version: ModelVersion, data: bytes, card: str, directory: Path, *, force: bool = False
) -> Path:
    """Write artifact, requirements.txt, signature.json, keel-model.json and MODEL_CARD.md."""
    if directory.exists() and not directory.is_dir():
        raise KeelError(f"{directory} is a file; export into a directory")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise KeelError(f"{directory} exists and is not empty; pass --force to overwrite it")
    try:
        _write_files(version, data, card, directory)
    except OSError as error:
        raise KeelError(f"cannot export to {directory}: {error.strerror or error}") from error
    return directory


def _write_files(version: ModelVersion, data: bytes, card: str, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(data)
    (directory / "requirements.txt").write_text("\n".join(version.requirements) + "\n")
    (directory / "signature.json").write_text(
        json.dumps(version.signature.to_dict(), indent=2) + "\n"
    )
    metadata = {
        "name": version.name,
        "version": version.version,
        "semver": version.semver,
        "status": version.status,
        "flavor": version.flavor,
        "artifact": {
            "file": MODEL_FILE,
            "sha256": version.artifact_digest,
            "size": version.artifact_size,
        },
        "library_versions": version.library_versions,
        "metrics": version.metrics,
        "params": version.params,
        "run_id": version.run_id,
        "inputs": version.inputs,
        "features": version.features,
        "aliases": version.aliases,
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    (directory / "MODEL_CARD.md").write_text(card)


def load_export(directory: str | Path) -> LoadedModel:
    """Load a model from an exported directory, verifying its sha256 first."""
    root = Path(directory)
    try:
        metadata = json.loads((root / METADATA_FILE).read_text())
        artifact = metadata["artifact"]
        data = (root / artifact["file"]).read_bytes()
    except (OSError, ValueError, KeyError) as error:
        raise KeelError(f"{root} is not a keel model export: {error}") from error
    actual = sha256_hex(data)
    if actual != artifact["sha256"]:
        raise ArtifactCorrupted(
            artifact["sha256"], str(root / artifact["file"]), f"content hashes to {actual}"
        )
    return load_model(metadata["flavor"], data, metadata["library_versions"])
