"""API keys for ``keel serve``: hashed secrets with scopes, per-key rate limits and revocation.

A key's secret reads ``keel_<id>_<random>``: the id (16 hex digits) names the row to look up,
the random part is 32 bytes from :mod:`secrets` (43 URL-safe characters). The secret is returned
once, by :meth:`KeyStore.create`, and only its SHA-256 is stored.

Why a plain SHA-256 and not bcrypt/argon2: slow, salted hashes exist to make guessing a
*low-entropy* password from a leaked hash expensive. A 256-bit random secret cannot be guessed
at any hashing speed, so a slow hash would buy nothing and cost milliseconds of CPU per request;
SHA-256 keeps authentication around a microsecond. The stored and computed digests are compared
with :func:`hmac.compare_digest`, so the comparison time says nothing about where they differ.

The database is a dependency the request path must survive losing: while it cannot be reached,
keys verified before keep working from memory (see :class:`KeyStore`), so an outage of the
metadata store does not turn into an outage of the server.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Row

from keel.errors import (
    ApiKeyError,
    ApiKeyExists,
    ApiKeyNotFound,
    InvalidApiKey,
    MetadataStoreError,
    MissingScope,
)
from keel.registry._rows import audit
from keel.store import MetadataStore, now
from keel.store import _tables as t

logger = logging.getLogger("keel.serving.keys")

PREDICT, FEEDBACK, ADMIN = "predict", "feedback", "admin"
SCOPES = frozenset({PREDICT, FEEDBACK, ADMIN})

CREATE, REVOKE = "create", "revoke"
ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"

_PREFIX = "keel"
_ID_BYTES = 8
_SECRET_BYTES = 32
# keel_<16 hex>_<43 URL-safe base64 characters>; anything else is refused before a lookup.
_SECRET = re.compile(r"^keel_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})$")
# Key names follow the endpoint-name rule: they appear on the command line and in audit entries.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")

DEFAULT_CACHE_TTL = 5.0
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_MAX_STALE = 3600.0
DEFAULT_RETRY_SECONDS = 1.0


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a secret: what the ``api_keys`` table stores."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """One API key, without its secret or hash.

        record = keys.authenticate(secret)
        record.require("predict")          # MissingScope unless the key has it
        limiter.take(record.id, record.rate_per_second, record.burst)   # when record.limited

    Scopes are independent: ``admin`` does not imply ``predict`` or ``feedback``.
    """

    id: str
    name: str
    scopes: frozenset[str]
    rate_per_second: float | None
    """Token-bucket refill rate; None means the key has no rate limit of its own."""
    burst: int | None
    """Token-bucket capacity (set whenever ``rate_per_second`` is)."""
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None
    revoked_by: str | None
    revoke_reason: str | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        """Raise :class:`MissingScope` unless the key has ``scope``."""
        if scope not in self.scopes:
            raise MissingScope(self.name, scope)

    @property
    def limited(self) -> bool:
        return self.rate_per_second is not None

    @property
    def actor(self) -> str:
        """Who the key acts as in audit entries: ``key:<name>/<id>``."""
        return f"key:{self.name}/{self.id}"

    def status(self, at: float | None = None) -> str:
        """``active``, ``revoked`` or ``expired`` at epoch time ``at`` (default: now)."""
        if self.revoked_at is not None:
            return REVOKED
        if self.expires_at is not None and self.expires_at <= (now() if at is None else at):
            return EXPIRED
        return ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "rate_per_second": self.rate_per_second,
            "burst": self.burst,
            "status": self.status(),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
        }


class KeyStore:
    """API keys in the metadata store, and the check a server runs on every request.

        keys = workspace.keys
        record, secret = keys.create("ci", ["predict"], rate_per_second=100, burst=200)
        keys.authenticate(secret).require("predict")    # InvalidApiKey / MissingScope
        keys.revoke("ci", reason="leaked in a build log")

    Every create and revoke writes an audit entry (entity ``api_key``, key = the key's id) in
    the same transaction, as ``actor`` (the workspace's actor unless a call names another, e.g.
    the admin key that asked for it over HTTP).

    :meth:`authenticate` keeps verified keys in memory for ``cache_ttl`` seconds (keyed by the
    secret's hash, never the secret), so the request path does not query the database per
    request. The bound this gives: a key revoked by another process keeps working in this one
    for at most ``cache_ttl`` seconds after the revocation commits (revoking through this
    object drops it from this cache at once). Expiry is checked on every call, cached or not,
    so an expired key stops at its ``expires_at``.

    **When the database cannot be reached**, a key verified less than ``max_stale`` seconds ago
    is still answered from memory (a key never verified cannot be, and the error is raised).
    For ``retry_seconds`` after a failure the database is not asked at all (:meth:`cached`
    answers those keys without I/O), so an outage costs one failed query per interval, not one
    per request. The price is the revocation bound: a key revoked elsewhere during an outage
    keeps working here until the database answers again. The outage and its end are logged,
    and :meth:`status` says whether keys are being answered from memory.
    """

    def __init__(
        self,
        store: MetadataStore,
        actor: str,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_stale: float = DEFAULT_MAX_STALE,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._actor = actor
        self._ttl = cache_ttl
        self._cache_size = cache_size
        self._max_stale = max(max_stale, cache_ttl)
        self._retry_seconds = retry_seconds
        self._clock = clock
        # secret hash -> (record, monotonic time it was verified against the database); kept
        # past cache_ttl (up to max_stale) to answer while the database cannot be reached
        self._cache: OrderedDict[str, tuple[KeyRecord, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._down_until: float | None = None
        """While the database is failing: until when it is not asked again."""
        self._last_error: str | None = None
        self._stale_answers = 0

    # -- changing --------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        rate_per_second: float | None = None,
        burst: int | None = None,
        expires_at: float | None = None,
        actor: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key and its secret. The secret is not stored and cannot be read again.

        ``burst`` defaults to one second's worth of ``rate_per_second`` (at least 1); a burst
        without a rate is refused."""
        _check_name(name)
        scope_set = _check_scopes(scopes)
        rate, burst = _check_limits(rate_per_second, burst)
        if expires_at is not None and not math.isfinite(expires_at):
            raise ApiKeyError("expires_at must be a finite epoch time")
        key_id = secrets.token_hex(_ID_BYTES)
        secret = f"{_PREFIX}_{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        who = actor or self._actor
        record = KeyRecord(
            id=key_id,
            name=name,
            scopes=scope_set,
            rate_per_second=rate,
            burst=burst,
            created_at=now(),
            created_by=who,
            expires_at=expires_at,
            revoked_at=None,
            revoked_by=None,
            revoke_reason=None,
        )
        with self._store.write() as connection:
            taken = connection.execute(
                sa.select(t.api_keys.c.id).where(t.api_keys.c.name == name)
            ).first()
            if taken is not None:
                raise ApiKeyExists(name)
            try:
                connection.execute(
                    t.api_keys.insert().values(
                        id=key_id,
                        name=name,
                        secret_hash=hash_secret(secret),
                        scopes=sorted(scope_set),
                        rate_per_second=rate,
                        burst=burst,
                        created_at=record.created_at,
                        created_by=who,
                        expires_at=expires_at,
                    )
                )
            except exc.IntegrityError:  # the same name, created by someone else since the check
                raise ApiKeyExists(name) from None
            audit(connection, who, "api_key", key_id, CREATE, None, _describe(record), None)
        return record, secret

    def revoke(self, id_or_name: str, reason: str, *, actor: str | None = None) -> KeyRecord:
        """Revoke a key (by id, else by name). Revoking a revoked key changes nothing and
        returns it as it is."""
        if not reason or not reason.strip():
            raise ApiKeyError("revoking a key needs a reason (it is recorded in the audit log)")
        who = actor or self._actor
        keys = t.api_keys
        with self._store.write() as connection:
            row = _find(connection, id_or_name, lock=True)
            if row.revoked_at is not None:
                return _record_from_row(row)
            at = now()
            connection.execute(
                keys.update()
                .where(keys.c.id == row.id, keys.c.revoked_at.is_(None))
                .values(revoked_at=at, revoked_by=who, revoke_reason=reason)
            )
            audit(connection, who, "api_key", row.id, REVOKE, ACTIVE, REVOKED, reason)
            revoked = connection.execute(sa.select(keys).where(keys.c.id == row.id)).one()
        with self._lock:
            self._cache.pop(row.secret_hash, None)
        return _record_from_row(revoked)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, id_or_name: str) -> KeyRecord:
        with self._store.read() as connection:
            return _record_from_row(_find(connection, id_or_name, lock=False))

    def list(self, *, include_revoked: bool = True) -> builtins.list[KeyRecord]:
        """Every key, oldest first (never a secret or a hash)."""
        keys = t.api_keys
        query = sa.select(keys).order_by(keys.c.created_at, keys.c.id)
        if not include_revoked:
            query = query.where(keys.c.revoked_at.is_(None))
        with self._store.read() as connection:
            rows = connection.execute(query).all()
        return [_record_from_row(row) for row in rows]

    # -- the request path ------------------------------------------------------------------------

    def cached(self, secret: str) -> KeyRecord | None:
        """The key for ``secret`` if it was verified less than ``cache_ttl`` seconds ago (less
        than ``max_stale`` while the database fails, within ``retry_seconds`` of its last
        failure) and has not expired since; None when the answer needs the database (or the key
        is bad).
        Never does I/O: an async server can call this on its loop and go to a thread for
        :meth:`authenticate` only on a miss."""
        if not isinstance(secret, str):
            return None
        digest = hash_secret(secret)
        with self._lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            record, verified = entry
            current = self._clock()
            age = current - verified
            if age >= self._max_stale:
                del self._cache[digest]
                return None
            if age >= self._ttl:
                if self._down_until is None or current >= self._down_until:
                    return None  # ask the database (kept in case it cannot answer)
                self._stale_answers += 1
        if record.status() != ACTIVE:
            return None
        return record

    def authenticate(self, secret: str) -> KeyRecord:
        """The active key ``secret`` belongs to, or :class:`InvalidApiKey` (unknown, malformed,
        revoked or expired: one message; the reason goes to the ``keel.serving.keys`` log with
        the key id, never the secret). Answers from the cache when it can, and from what it
        verified before when the database cannot be reached (see the class); raises
        :class:`MetadataStoreError` when neither can answer."""
        match = _SECRET.match(secret) if isinstance(secret, str) else None
        if match is None:
            raise _rejected("malformed", None)
        hit = self.cached(secret)
        if hit is not None:
            return hit
        key_id = match.group(1)
        digest = hash_secret(secret)
        keys = t.api_keys
        try:
            with self._store.read() as connection:
                row = connection.execute(sa.select(keys).where(keys.c.id == key_id)).first()
        except MetadataStoreError as error:
            return self._stale(digest, error)
        self._answered()
        # Compare even when the id is unknown, so an unknown id takes as long as a wrong secret.
        stored = row.secret_hash if row is not None else "0" * 64
        if not hmac.compare_digest(digest, stored) or row is None:
            self._forget(digest)
            raise _rejected("unknown", key_id)
        record = _record_from_row(row)
        status = record.status()
        if status != ACTIVE:
            self._forget(digest)  # so no later outage brings a revoked key back
            raise _rejected(status, key_id)
        with self._lock:
            self._cache[digest] = (record, self._clock())
            self._cache.move_to_end(digest)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return record

    def status(self) -> dict[str, Any]:
        """For ``/readyz``: whether keys are being answered from memory because the database
        fails, its last error, and how many requests were answered so (since start)."""
        with self._lock:
            return {
                "database_reachable": self._down_until is None,
                "last_error": self._last_error,
                "stale_answers": self._stale_answers,
                "cached_keys": len(self._cache),
            }

    # -- the database failing ----------------------------------------------------------------------

    def _stale(self, digest: str, error: MetadataStoreError) -> KeyRecord:
        """The key last verified under ``digest``, while the database fails; or ``error``."""
        with self._lock:
            first = self._down_until is None
            self._down_until = self._clock() + self._retry_seconds
            self._last_error = str(error)
            entry = self._cache.get(digest)
            usable = entry is not None and self._clock() - entry[1] < self._max_stale
            if usable:
                self._stale_answers += 1
        if first:
            logger.warning(
                "API keys: the metadata database fails (%s); keys verified in the last %g s "
                "keep working until it answers again",
                error,
                self._max_stale,
            )
        if entry is None or not usable or entry[0].status() != ACTIVE:
            raise error
        return entry[0]

    def _answered(self) -> None:
        if self._down_until is None:  # the usual case: no lock taken
            return
        with self._lock:
            if self._down_until is None:
                return
            self._down_until = None
        logger.info("API keys: the metadata database answers again")

    def _forget(self, digest: str) -> None:
        with self._lock:
            self._cache.pop(digest, None)


# -- helpers ---------------------------------------------------------------------------------------


def _rejected(reason: str, key_id: str | None) -> InvalidApiKey:
    logger.warning("API key rejected (%s), key id %s", reason, key_id or "-")
    return InvalidApiKey(reason, key_id)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiKeyError(
            f"'{name}' is not a valid key name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )


def _check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    if isinstance(scopes, str):
        scopes = [scopes]
    given = frozenset(scopes)
    unknown = sorted(given - SCOPES)
    if unknown:
        raise ApiKeyError(
            f"unknown scope {', '.join(repr(s) for s in unknown)}: "
            f"scopes are {', '.join(sorted(SCOPES))}"
        )
    if not given:
        raise ApiKeyError(f"a key needs at least one scope ({', '.join(sorted(SCOPES))})")
    return given


def _check_limits(rate: float | None, burst: int | None) -> tuple[float | None, int | None]:
    if rate is None:
        if burst is not None:
            raise ApiKeyError("a burst needs a rate: give rate_per_second too")
        return None, None
    if not math.isfinite(rate) or rate <= 0:
        raise ApiKeyError(f"rate_per_second must be a positive number, not {rate}")
    if burst is None:
        burst = max(1, math.ceil(rate))
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ApiKeyError(f"burst must be a whole number of at least 1, not {burst}")
    return float(rate), burst


def _find(connection: Connection, ref: str, *, lock: bool) -> Row[Any]:
    """The row whose id is ``ref``, else whose name is; ids win (they are 16 hex digits)."""
    keys = t.api_keys
    for column in (keys.c.id, keys.c.name):
        query = sa.select(keys).where(column == ref)
        if lock:
            query = query.with_for_update()
        row = connection.execute(query).first()
        if row is not None:
            return row
    raise ApiKeyNotFound(ref)


def _describe(record: KeyRecord) -> str:
    """The audited value of a new key: its name, scopes and limits (never the secret)."""
    parts = [record.name, "scopes=" + ",".join(sorted(record.scopes))]
    if record.rate_per_second is not None:
        parts.append(f"rate={record.rate_per_second:g}/s burst={record.burst}")
    if record.expires_at is not None:
        parts.append(f"expires_at={record.expires_at:.0f}")
    return " ".join(parts)


def _record_from_row(row: Row[Any]) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes),
        rate_per_second=row.rate_per_second,
        burst=row.burst,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revoke_reason=row.revoke_reason,
    )
