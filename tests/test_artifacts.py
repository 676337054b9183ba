"""The content-addressed artifact store: atomic writes and integrity on every read."""

from __future__ import annotations

import builtins
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.artifacts import ArtifactStore
from keel.errors import ArtifactCorrupted, ArtifactError, ArtifactNotFound


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    return ArtifactStore(f"memory://keel-tests/{uuid.uuid4().hex}")


def _stored_file(store: ArtifactStore, digest: str) -> Path:
    return Path(store.location(digest))


def test_bytes_are_stored_under_their_sha256(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"model bytes")
    assert ref.digest == hashlib.sha256(b"model bytes").hexdigest()
    assert ref.size == len(b"model bytes")
    assert store.get_bytes(ref.digest, size=ref.size) == b"model bytes"


def test_a_file_is_stored_under_the_sha256_of_its_content(
    store: ArtifactStore, tmp_path: Path
) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x00\x01" * 700_000)
    ref = store.put_file(source)
    assert ref.digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert store.get_bytes(ref.digest) == source.read_bytes()


def test_storing_the_same_bytes_twice_keeps_one_copy(store: ArtifactStore) -> None:
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    assert first == second
    assert store.exists(first.digest)


@given(st.binary(max_size=4096))
def test_any_bytes_round_trip(data: bytes) -> None:
    store = ArtifactStore(f"memory://keel-tests/{uuid.uuid4().hex}")
    ref = store.put_bytes(data)
    assert store.get_bytes(ref.digest, size=ref.size) == data


def test_a_modified_file_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes(b"the real model")
    _stored_file(store, ref.digest).write_bytes(b"the evil model")
    with pytest.raises(ArtifactCorrupted, match="integrity check.*hashes to"):
        store.get_bytes(ref.digest, size=ref.size)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes(b"x" * 1000)
    path = _stored_file(store, ref.digest)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ArtifactCorrupted, match="size is 500 bytes, recorded 1000"):
        store.get_bytes(ref.digest, size=ref.size)
    with pytest.raises(ArtifactCorrupted, match="hashes to"):
        store.get_bytes(ref.digest)


def test_a_damaged_copy_is_replaced_when_the_same_bytes_are_stored_again(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes(b"y" * 100)
    _stored_file(store, ref.digest).write_bytes(b"y" * 10)
    store.put_bytes(b"y" * 100)
    assert store.get_bytes(ref.digest, size=ref.size) == b"y" * 100


def test_a_missing_artifact_is_reported_with_its_location(store: ArtifactStore) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArtifactNotFound, match=digest):
        store.get_bytes(digest)


def test_a_malformed_digest_is_refused(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="not a sha256"):
        store.get_bytes("../../etc/passwd")


def test_no_temporary_files_are_left_after_writes(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    source = tmp_path / "in.bin"
    source.write_bytes(b"abc")
    store.put_bytes(b"one")
    store.put_file(source)
    store.put_file(source)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_crash_mid_write_leaves_no_artifact_under_a_valid_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source dies after two of three chunks: nothing may appear under a digest."""
    store = ArtifactStore(str(tmp_path / "store"))
    source = tmp_path / "big.bin"
    source.write_bytes(b"z" * (3 << 20))
    real_open = builtins.open

    class DyingReader(io.BytesIO):
        reads = 0

        def read(self, size: int | None = -1) -> bytes:
            self.reads += 1
            if self.reads > 2:
                raise OSError("disk yanked")
            return super().read(size)

    def open_with_dying_source(path: Any, *args: Any, **kwargs: Any) -> Any:
        return (
            DyingReader(source.read_bytes()) if path == source else real_open(path, *args, **kwargs)
        )

    monkeypatch.setattr(builtins, "open", open_with_dying_source)
    with pytest.raises(ArtifactError, match="disk yanked"):
        store.put_file(source)
    monkeypatch.undo()
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


def test_an_unknown_protocol_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="cannot open artifact store"):
        ArtifactStore("nope://bucket/x")


def test_a_verified_path_holds_the_artifact_bytes(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"parquet bytes")
    path = store.verified_path(ref.digest, size=ref.size)
    assert path.read_bytes() == b"parquet bytes"


def test_a_verified_path_of_a_tampered_local_file_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes(b"the real data")
    _stored_file(store, ref.digest).write_bytes(b"the evil data")
    with pytest.raises(ArtifactCorrupted, match="hashes to"):
        store.verified_path(ref.digest, size=ref.size)
