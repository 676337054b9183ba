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
)
from keel.registry._rows import audit
from keel.serving._key_record import (
    ACTIVE,
    ADMIN,
    EXPIRED,
    FEEDBACK,
    PREDICT,
    REVOKED,
    SCOPES,
    KeyRecord,
    check_limits,
    check_name,
    check_scopes,
    describe,
    record_from_row,
)
from keel.store import MetadataStore, now
from keel.store import _tables as t

logger = logging.getLogger("keel.serving.keys")

__all__ = [
    "ACTIVE",
    "ADMIN",
    "EXPIRED",
    "FEEDBACK",
    "PREDICT",
    "REVOKED",
    "SCOPES",
    "KeyRecord",
    "KeyStore",
]

CREATE, REVOKE = "create", "revoke"

_PREFIX = "keel"
_ID_BYTES = 8
_SECRET_BYTES = 32
# keel_<16 hex>_<43 URL-safe base64 characters>; anything else is refused before a lookup.
_SECRET = re.compile(r"^keel_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})$")
DEFAULT_CACHE_TTL = 5.0
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_MAX_STALE = 3600.0
DEFAULT_RETRY_SECONDS = 1.0


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a secret: what the ``api_keys`` table stores."""
    return hashlib.sha256(secret.encode()).hexdigest()


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
        self._generation = 0

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
        check_name(name)
        scope_set = check_scopes(scopes)
        rate, burst = check_limits(rate_per_second, burst)
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
            audit(connection, who, "api_key", key_id, CREATE, None, describe(record), None)
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
                return record_from_row(row)
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
            self._generation += 1
        return record_from_row(revoked)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, id_or_name: str) -> KeyRecord:
        with self._store.read() as connection:
            return record_from_row(_find(connection, id_or_name, lock=False))

    def list(self, *, include_revoked: bool = True) -> builtins.list[KeyRecord]:
        """Every key, oldest first (never a secret or a hash)."""
        keys = t.api_keys
        query = sa.select(keys).order_by(keys.c.created_at, keys.c.id)
        if not include_revoked:
            query = query.where(keys.c.revoked_at.is_(None))
        with self._store.read() as connection:
            rows = connection.execute(query).all()
        return [record_from_row(row) for row in rows]

    # -- the request path ------------------------------------------------------------------------

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock the cache's times are read from (deadlines compare with it)."""
        return self._clock

    @property
    def generation(self) -> int:
        """Bumped each time this object forgets a key it verified (revoked through it, or
        refused by the database): an answer of :meth:`cached_until` stands only while the
        generation is the one it was given under."""
        return self._generation

    def cached(self, secret: str) -> KeyRecord | None:
        """The key for ``secret`` if it was verified less than ``cache_ttl`` seconds ago (less
        than ``max_stale`` while the database fails, within ``retry_seconds`` of its last
        failure) and has not expired since; None when the answer needs the database (or the key
        is bad).
        Never does I/O: an async server can call this on its loop and go to a thread for
        :meth:`authenticate` only on a miss."""
        hit = self.cached_until(secret)
        return None if hit is None else hit[0]

    def cached_until(self, secret: str) -> tuple[KeyRecord, float | None] | None:
        """:meth:`cached`, with the time (on :attr:`clock`) until which the answer stands
        without asking again: ``verified + cache_ttl``; None for an answer that must be asked
        again on each request (one given from memory while the database fails, or a key with
        an expiry). A caller that keeps the answer must also drop it when :attr:`generation`
        changes."""
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
            until: float | None = verified + self._ttl
            if age >= self._ttl:
                if self._down_until is None or current >= self._down_until:
                    return None  # ask the database (kept in case it cannot answer)
                self._stale_answers += 1
                until = None
        if record.revoked_at is not None:
            return None
        if record.expires_at is not None:
            if record.status() != ACTIVE:
                return None
            until = None
        return record, until

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
        record = record_from_row(row)
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
            self._generation += 1


# -- helpers ---------------------------------------------------------------------------------------


def _rejected(reason: str, key_id: str | None) -> InvalidApiKey:
    logger.warning("API key rejected (%s), key id %s", reason, key_id or "-")
    return InvalidApiKey(reason, key_id)


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
