"""Personal data kept out of the prediction log: the values of fields a signature marks
``sensitive`` are tokenized or dropped before an entry is written.

    redactor = InputRedactor.from_schemas([signature.inputs], mode="tokenize", key=secret)
    if redactor is not None:               # None: nothing sensitive, nothing to pay per request
        inputs = redactor.redact(inputs)   # {"email": "hmac-sha256:5c1f...", "age": 41}

A token is ``"hmac-sha256:"`` and the hex HMAC-SHA256, keyed by ``[serving] pii_key``, of the
value's canonical text, so it is the same in every worker and after every restart and logged
predictions can still be joined on it (to feedback, or across endpoints: the field's name is not
part of it), while nobody without the key can test a guess. The canonical text makes values that
JSON spells differently one value: ``7``, ``7.0`` and ``"7"`` give one token, as do
``"2024-05-01T12:00:00Z"`` and ``"2024-05-01T14:00:00+02:00"`` in a timestamp field. A missing
value (None) stays None: whether a field was given is not personal, and monitoring needs it.

There is no random per-process key to fall back on: tokens that change at each restart could not
be joined, so tokenize mode without a key is a :class:`~keel.errors.ConfigError` and the endpoint
does not start. ``mode="drop"`` needs no key and removes the fields from the logged inputs.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import numpy as np
import orjson

from keel.data import Schema
from keel.errors import ConfigError

PiiMode = Literal["tokenize", "drop"]
PII_MODES: tuple[str, ...] = get_args(PiiMode)
TOKEN_PREFIX = "hmac-sha256:"
MIN_KEY_LENGTH = 16

_KEY_HELP = (
    "set pii_key under [serving] in keel.toml or, better, the KEEL_SERVING__PII_KEY environment "
    f"variable of every server: a random secret of at least {MIN_KEY_LENGTH} characters, e.g. "
    "`python -c 'import secrets; print(secrets.token_hex(32))'`, kept as long as logged tokens "
    'must stay joinable; or set pii_mode = "drop" to log no value of those fields'
)
_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class InputRedactor:
    """Replaces (``tokenize``) or removes (``drop``) the sensitive fields of logged inputs.

    Build it with :meth:`from_schemas` (which checks the mode and the key), once per served
    endpoint, so a request only pays a dict copy and one HMAC per sensitive value present.
    """

    __slots__ = ("_canonical", "_drop", "_mac", "mode", "names")

    def __init__(
        self, fields: Mapping[str, Callable[[Any], str]], mode: PiiMode, key: bytes | None
    ) -> None:
        self.names: tuple[str, ...] = tuple(fields)
        """The fields this redactor protects."""
        self.mode: PiiMode = mode
        self._canonical = dict(fields)
        self._drop = mode == "drop"
        # The key's padded blocks hashed once; each value then costs a copy (~1 us, not 1.5).
        self._mac = hmac.new(key or b"", digestmod="sha256")

    @classmethod
    def from_schemas(
        cls,
        schemas: Iterable[Schema],
        *,
        mode: PiiMode,
        key: str | bytes | None,
        what: str = "the endpoint",
    ) -> InputRedactor | None:
        """The redactor of the fields marked sensitive in any of ``schemas`` (an endpoint's
        primary, arms, fallback and shadow versions all see the same request records), or None
        when no field is. ``what`` names the endpoint in the error raised when tokenize mode
        has no key (or one shorter than 16 characters): the endpoint must not start then."""
        if mode not in PII_MODES:
            raise ConfigError(
                f"is {mode!r}; use one of: {', '.join(PII_MODES)}", key="serving.pii_mode"
            )
        fields: dict[str, Callable[[Any], str]] = {}
        for schema in schemas:
            for field in schema.fields:
                if field.sensitive:
                    timestamp = field.dtype == "timestamp" or fields.get(field.name) is _instant
                    fields[field.name] = _instant if timestamp else canonical_text
        if not fields:
            return None
        secret = key.encode() if isinstance(key, str) else key
        if mode == "tokenize" and (secret is None or len(secret) < MIN_KEY_LENGTH):
            problem = "is not set" if not secret else f"is shorter than {MIN_KEY_LENGTH}"
            raise ConfigError(
                f"{problem}, but {what} has sensitive fields ({', '.join(fields)}) and "
                f'pii_mode is "tokenize", so they would reach the prediction log in clear: '
                + _KEY_HELP,
                key="serving.pii_key",
            )
        return cls(fields, mode, secret)

    @classmethod
    def from_schema(
        cls, schema: Schema, mode: PiiMode, key: str | bytes | None
    ) -> InputRedactor | None:
        """:meth:`from_schemas` of one schema."""
        return cls.from_schemas([schema], mode=mode, key=key)

    def token(self, value: Any, *, timestamp: bool = False) -> str | None:
        """The token ``value`` is logged as (None for None), e.g. to find the predictions
        made for a known customer; ``timestamp`` reads a string as an instant, as a timestamp
        field does."""
        if self._drop:
            raise ConfigError(
                'is "drop": the prediction log holds no tokens to look for', key="serving.pii_mode"
            )
        if value is None:
            return None
        return self._token(_instant(value) if timestamp else canonical_text(value))

    def redact(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``inputs`` with each sensitive value tokenized, or the field removed."""
        out = dict(inputs)
        if self._drop:
            for name in self.names:
                out.pop(name, None)
            return out
        for name, canonical in self._canonical.items():
            value = out.get(name)
            if value is not None:
                out[name] = self._token(canonical(value))
        return out

    def redact_many(self, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`redact` of each record."""
        return [self.redact(record) for record in records]

    def _token(self, text: str) -> str:
        mac = self._mac.copy()
        # surrogatepass: a lone surrogate is a value too, and must not make redaction fail.
        mac.update(text.encode("utf-8", "surrogatepass"))
        return TOKEN_PREFIX + mac.hexdigest()

    def __repr__(self) -> str:  # never the key
        return f"InputRedactor(mode={self.mode!r}, names={self.names!r})"


def canonical_text(value: Any) -> str:
    """The text a value is tokenized from: equal for the spellings of one value (``7``,
    ``7.0``, ``"7"``, ``np.int64(7)``; ``-0.0`` and ``0``), distinct for distinct values."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        try:
            return str(int(value))
        except ValueError:  # past Python's 4,300-digit limit of int to text
            return hex(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        # An integral float is the int it equals (JSON encoders write 7 as 7.0 and back).
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS).decode()
    except TypeError:
        return repr(value)


def _instant(value: Any) -> str:
    """A timestamp's canonical text: the UTC instant in ISO 8601 (no zone read as UTC, as
    keel's validators do); a string that is not ISO 8601 is its own text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        stamp = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return stamp.isoformat()
    return canonical_text(value)
