"""One API key as the server sees it (:class:`KeyRecord`), its scopes and the checks a new key's
fields go through; :mod:`keel.serving._keys` stores them."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row

from keel.errors import ApiKeyError, MissingScope
from keel.store import now

PREDICT, FEEDBACK, ADMIN = "predict", "feedback", "admin"
SCOPES = frozenset({PREDICT, FEEDBACK, ADMIN})

ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"

# Key names follow the endpoint-name rule: they appear on the command line and in audit entries.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")


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


def check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiKeyError(
            f"'{name}' is not a valid key name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
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


def check_limits(rate: float | None, burst: int | None) -> tuple[float | None, int | None]:
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


def describe(record: KeyRecord) -> str:
    """The audited value of a new key: its name, scopes and limits (never the secret)."""
    parts = [record.name, "scopes=" + ",".join(sorted(record.scopes))]
    if record.rate_per_second is not None:
        parts.append(f"rate={record.rate_per_second:g}/s burst={record.burst}")
    if record.expires_at is not None:
        parts.append(f"expires_at={record.expires_at:.0f}")
    return " ".join(parts)


def record_from_row(row: Row[Any]) -> KeyRecord:
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
