"""Content-addressed artifact store over fsspec, integrity checked on every load.

Every artifact is stored under its sha256 (``<root>/sha256/ab/abcdef…``), so the same bytes
are stored once and a name can never point at other bytes than the ones recorded. Writes go to a
temporary name first and are renamed into place, so a crash never leaves a half-written file
under a valid digest; reads re-hash the bytes and refuse them when they differ from the digest
the metadata store recorded, before anything is deserialised.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from keel.errors import ArtifactCorrupted, ArtifactError, ArtifactNotFound

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """What the metadata store records about an artifact: its digest and its size."""

    digest: str
    size: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Store and fetch immutable blobs by sha256.

    store = ArtifactStore("/srv/keel/artifacts")      # or "s3://bucket/keel", "memory://x"
    ref = store.put_bytes(b"...")
    data = store.get_bytes(ref.digest, size=ref.size) # raises ArtifactCorrupted if altered
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            fs, root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as error:
            raise ArtifactError(f"cannot open artifact store {url}: {error}") from error
        self._fs: Any = fs
        self._root = root.rstrip("/")
        self._local = isinstance(fs, LocalFileSystem)

    def location(self, digest: str) -> str:
        """Where the artifact with ``digest`` lives (a path or URL for people to read)."""
        return self._path(digest) if self._local else f"{self.url.rstrip('/')}/{self._key(digest)}"

    def _key(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ArtifactError(f"'{digest}' is not a sha256 hex digest")
        return f"sha256/{digest[:2]}/{digest}"

    def _path(self, digest: str) -> str:
        return f"{self._root}/{self._key(digest)}"

    # -- writing -------------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data``; returns its reference. Storing the same bytes twice is a no-op."""
        ref = ArtifactRef(digest=sha256_hex(data), size=len(data))
        if self._present(ref):
            return ref
        self._write_atomically(ref.digest, lambda handle: handle.write(data))
        return ref

    def put_file(self, path: str | os.PathLike[str]) -> ArtifactRef:
        """Store the file at ``path``, hashing it while it is copied (no full read into memory)."""
        digest = hashlib.sha256()
        size = 0
        tmp = self._tmp_path()
        try:
            with open(path, "rb") as source, self._fs.open(tmp, "wb") as target:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    target.write(chunk)
                _sync(target)
            ref = ArtifactRef(digest=digest.hexdigest(), size=size)
            if self._present(ref):
                return ref
            self._move_into_place(tmp, ref.digest)
            return ref
        except OSError as error:
            raise ArtifactError(f"cannot store {path} in {self.url}: {error}") from error
        finally:
            self._discard(tmp)

    def _write_atomically(self, digest: str, write: Any) -> None:
        tmp = self._tmp_path()
        try:
            with self._fs.open(tmp, "wb") as handle:
                write(handle)
                _sync(handle)
            self._move_into_place(tmp, digest)
        except OSError as error:
            raise ArtifactError(f"cannot write artifact to {self.url}: {error}") from error
        finally:
            self._discard(tmp)

    def _tmp_path(self) -> str:
        tmp_dir = f"{self._root}/tmp"
        self._fs.makedirs(tmp_dir, exist_ok=True)
        return f"{tmp_dir}/{uuid.uuid4().hex}.part"

    def _move_into_place(self, tmp: str, digest: str) -> None:
        final = self._path(digest)
        self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if self._local:
            os.replace(tmp, final)  # atomic on POSIX: readers see the old name or the whole file
        else:
            self._fs.mv(tmp, final)

    def _discard(self, tmp: str) -> None:
        try:
            if self._fs.exists(tmp):
                self._fs.rm(tmp)
        except OSError:
            pass

    def _present(self, ref: ArtifactRef) -> bool:
        """True when a file of the right size is already stored (a damaged one is replaced)."""
        path = self._path(ref.digest)
        try:
            return bool(self._fs.size(path) == ref.size)
        except (FileNotFoundError, OSError):
            return False

    # -- reading -------------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return bool(self._fs.exists(self._path(digest)))

    def get_bytes(self, digest: str, size: int | None = None) -> bytes:
        """The bytes stored under ``digest``, after checking they still hash to it."""
        path = self._path(digest)
        try:
            with self._fs.open(path, "rb") as handle:
                data: bytes = handle.read()
        except FileNotFoundError:
            raise ArtifactNotFound(digest, self.location(digest)) from None
        except OSError as error:
            raise ArtifactError(f"cannot read {self.location(digest)}: {error}") from error
        if size is not None and len(data) != size:
            raise ArtifactCorrupted(
                digest, self.location(digest), f"size is {len(data)} bytes, recorded {size}"
            )
        actual = sha256_hex(data)
        if actual != digest:
            raise ArtifactCorrupted(digest, self.location(digest), f"content hashes to {actual}")
        return data

    def verified_path(self, digest: str, size: int | None = None) -> Path:
        """A local file holding the artifact, hashed (in chunks) before it is handed out: the
        stored file itself for a local store, else a verified copy in a cache directory under
        the system temp dir. For readers that want a path (DuckDB, pyarrow); treat it as
        read-only."""
        if self._local:
            path = Path(self._path(digest))
            _verify_file(path, digest, size)
            return path
        cached = Path(tempfile.gettempdir()) / "keel-artifacts" / digest
        with contextlib.suppress(ArtifactError):  # not cached yet, or damaged: fetch again
            _verify_file(cached, digest, size)
            return cached
        data = self.get_bytes(digest, size=size)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{uuid.uuid4().hex}.part")
        partial.write_bytes(data)
        os.replace(partial, cached)
        return cached

    def copy_to(self, digest: str, destination: Path, size: int | None = None) -> Path:
        """Write the verified artifact to a local file (for exports)."""
        data = self.get_bytes(digest, size=size)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        return destination


def _sync(handle: IO[bytes]) -> None:
    """Flush to stable storage where the handle is a real file, so rename implies content."""
    handle.flush()
    fileno = getattr(handle, "fileno", None)
    if fileno is None:
        return
    # not a real file descriptor on remote or in-memory filesystems: nothing to sync
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        os.fsync(fileno())


def _verify_file(path: Path, digest: str, size: int | None) -> None:
    """Hash the file at ``path`` in chunks and refuse it unless it holds the artifact's bytes."""
    hasher = hashlib.sha256()
    read = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                read += len(chunk)
    except FileNotFoundError:
        raise ArtifactNotFound(digest, str(path)) from None
    except OSError as error:
        raise ArtifactError(f"cannot read {path}: {error}") from error
    if size is not None and read != size:
        raise ArtifactCorrupted(digest, str(path), f"size is {read} bytes, recorded {size}")
    if hasher.hexdigest() != digest:
        raise ArtifactCorrupted(digest, str(path), f"content hashes to {hasher.hexdigest()}")
