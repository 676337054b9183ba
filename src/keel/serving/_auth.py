"""API keys and rate limits on the request path.

    guard = Guard(workspace.keys, MemoryLimiter())
    key = await guard.check(dict(scope["headers"]), "predict")   # Problem 401 / 403 / 429

A request names its key with ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The key
is checked against the :class:`~keel.serving._keys.KeyStore` (from memory when it was verified
in the last seconds, else in a thread: the store is a database), then its scope, then its rate
limit (token bucket per key; through Redis when ``[serving] ratelimit_url`` names one, so every
worker process draws on one budget). The answers a client can act on:

- 401 ``unauthenticated`` (no key), ``invalid_api_key`` (unknown, revoked, expired: one
  message, the reason is logged) or ``ambiguous_api_key`` (two different keys, one in each
  header), with ``WWW-Authenticate: Bearer``;
- 403 ``missing_scope``;
- 429 ``rate_limited`` with ``Retry-After`` (whole seconds).

Which routes need which scope is the router's business (``_app``); health, readiness, metrics
and the API documents stay open.

A key the :class:`~keel.serving._keys.KeyStore` answered from memory is remembered by the
request's raw key header until the store's answer would have to be asked again (its
``cache_ttl``, or at once when the store forgets a key), so the next request with the same
header is one dictionary lookup instead of parsing the header and hashing the secret. Those
headers are secrets held in memory for seconds; so are the request buffers the server read them
from, which Python frees without clearing, so this adds no exposure a memory reader would not
have.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from keel.errors import InvalidApiKey, MetadataStoreError
from keel.serving._dataplane import Problem
from keel.serving._ratelimit import MemoryLimiter, RateLimiter

if TYPE_CHECKING:
    from keel.serving._keys import KeyRecord, KeyStore

_CHALLENGE = [(b"www-authenticate", b'Bearer realm="keel"')]
_REMEMBERED: Final = 10_000
"""Key headers remembered at most (then all are forgotten and remembered anew)."""
_REMEMBERED_LENGTH: Final = 256
"""Key headers longer than this (a secret is 70 characters) are checked each time, never
remembered: padding a valid key with blanks must not turn into memory the server holds."""

_Headers = tuple[bytes | None, bytes | None]
"""A request's raw ``Authorization`` and ``X-API-Key`` values (None: not sent)."""


class Guard:
    """Authenticates, authorizes and rate-limits requests; see the module doc."""

    def __init__(self, keys: KeyStore, limiter: RateLimiter) -> None:
        self.keys = keys
        self.limiter = limiter
        # The in-process limiter answers in microseconds; Redis's is a network round trip.
        self._limit_in_thread = not isinstance(limiter, MemoryLimiter)
        # key headers -> (the key, until when on keys.clock, keys.generation then)
        self._remembered: dict[_Headers, tuple[KeyRecord, float, int]] = {}
        self._in_flight: dict[_Headers, asyncio.Future[KeyRecord]] = {}

    async def check(self, headers: Mapping[bytes, bytes], scope: str) -> KeyRecord:
        """The key of a request allowed to use ``scope`` now (its ``actor`` is the identity
        the request's changes are audited with); a :class:`Problem` otherwise. ``headers``
        are the request's ASGI headers as a dictionary (names lower-case, as ASGI gives
        them)."""
        sent = (headers.get(b"authorization"), headers.get(b"x-api-key"))
        key = self._recall(sent)
        if key is None:
            key = await self._authenticate(sent)
        if not key.allows(scope):
            raise Problem(
                403,
                "missing_scope",
                f"the API key '{key.name}' lacks the '{scope}' scope "
                f"(it has: {', '.join(sorted(key.scopes)) or 'none'})",
            )
        rate, burst = key.rate_per_second, key.burst
        if rate is not None and burst is not None:
            if self._limit_in_thread:
                decision = await asyncio.to_thread(self.limiter.take, key.id, rate, burst)
            else:
                decision = self.limiter.take(key.id, rate, burst)
            if not decision.allowed:
                raise Problem(
                    429,
                    "rate_limited",
                    f"the API key '{key.name}' is over its rate limit of "
                    f"{rate:g}/s (burst {burst}): retry in "
                    f"{decision.retry_after_seconds:.2f} s",
                    headers=[(b"retry-after", decision.retry_after_header.encode())],
                )
        return key

    def _recall(self, sent: _Headers) -> KeyRecord | None:
        """The key remembered for these key headers, while the store's answer stands."""
        remembered = self._remembered.get(sent)
        if remembered is None:
            return None
        key, until, generation = remembered
        if generation != self.keys.generation or self.keys.clock() >= until:
            del self._remembered[sent]
            return None
        return key

    async def _authenticate(self, sent: _Headers) -> KeyRecord:
        """The key the headers name, from the store (its memory, else the database)."""
        secret = _secret(*sent)
        if secret is None:
            raise Problem(
                401,
                "unauthenticated",
                "this server needs an API key: send 'Authorization: Bearer <key>' or "
                "'X-API-Key: <key>' (keys come from `keel keys create`)",
                headers=_CHALLENGE,
            )
        generation = self.keys.generation
        hit = self.keys.cached_until(secret)
        if hit is None:
            try:
                key = await self._ask_once(sent, secret)
            except InvalidApiKey:
                raise Problem(
                    401, "invalid_api_key", "invalid API key", headers=_CHALLENGE
                ) from None
            except MetadataStoreError as error:
                raise Problem(
                    503, "keys_unavailable", f"API keys cannot be checked now: {error}"
                ) from None
            return key
        key, until = hit
        if until is not None and sum(len(value or b"") for value in sent) <= _REMEMBERED_LENGTH:
            if len(self._remembered) >= _REMEMBERED:
                self._remembered.clear()
            self._remembered[sent] = (key, until, generation)
        return key

    async def _ask_once(self, sent: _Headers, secret: str) -> KeyRecord:
        """``keys.authenticate(secret)`` in a thread, shared by every request that needs it
        meanwhile: when a key's cached answer runs out, all its concurrent requests miss
        together, and one database query answers them all instead of one each (a thousand
        queued queries would hold every one of them up behind the others)."""
        flight = self._in_flight.get(sent)
        if flight is None:
            flight = asyncio.ensure_future(asyncio.to_thread(self.keys.authenticate, secret))
            self._in_flight[sent] = flight
            flight.add_done_callback(lambda done: self._landed(sent, done))
        # shield: a request cancelled while waiting must not cancel the others' answer
        return await asyncio.shield(flight)

    def _landed(self, sent: _Headers, flight: asyncio.Future[KeyRecord]) -> None:
        if self._in_flight.get(sent) is flight:
            del self._in_flight[sent]
        if not flight.cancelled():
            flight.exception()  # retrieved here: its waiters may all have gone

    def close(self) -> None:
        self.limiter.close()


def _secret(authorization: bytes | None, x_api_key: bytes | None) -> str | None:
    """The key a request sends, in either header; None if it sends none. Two different keys
    are refused rather than one picked by header order: whichever was picked, the request
    would act, and be audited, as a key its sender may not have meant (RFC 6750 forbids
    sending a token more than one way)."""
    bearer = api_key = None
    if authorization is not None:
        scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            bearer = token.strip()
    if x_api_key is not None and x_api_key.strip():
        api_key = x_api_key.decode("latin-1").strip()
    if bearer is not None and api_key is not None and bearer != api_key:
        raise Problem(
            401,
            "ambiguous_api_key",
            "the request sends two different API keys, in Authorization and X-API-Key: "
            "send one key, in either header",
            headers=_CHALLENGE,
        )
    return bearer or api_key


def auth_needed(setting: str, host: str) -> bool:
    """Whether requests need keys: ``on``, ``off``, or ``auto`` (on unless ``host`` is a
    loopback address, so a server reachable from other machines is never open by default)."""
    if setting != "auto":
        return setting == "on"
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: reachable from elsewhere
        return True
