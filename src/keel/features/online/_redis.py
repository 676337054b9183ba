"""The production online store: Redis, one string per (view, entity key)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import orjson
import redis

from keel.errors import FeatureStoreError, OnlineStoreUnavailable
from keel.features.online._base import EntityKeys, OnlineRows, OnlineStore, display_url
from keel.features.online._codec import (
    LayoutCache,
    assemble,
    encode_keys,
    encode_rows,
    event_nanoseconds,
)

# Event timestamps are stored as 20 decimal digits of (ns since the epoch + 2**63), so every
# int64 instant is a non-negative number of one width and compares digit by digit.
_OFFSET = 2**63
# Keys per script call, and script calls per pipeline round trip.
WRITE_CHUNK = 2_000
CHUNKS_PER_ROUND_TRIP = 8

# Writes the rows of one chunk, each only if it is as new as the stored one or newer. The
# timestamps are compared as two 10-digit halves, which Lua's doubles hold exactly.
_KEEP_NEWER = """
local written = 0
for i, key in ipairs(KEYS) do
  local new = ARGV[i]
  local old = redis.call('GETRANGE', key, 0, 19)
  local replace = old == ''
  if not replace then
    local new_high, old_high = tonumber(string.sub(new, 1, 10)), tonumber(string.sub(old, 1, 10))
    replace = new_high > old_high or (new_high == old_high and
      tonumber(string.sub(new, 11, 20)) >= tonumber(string.sub(old, 11, 20)))
  end
  if replace then
    redis.call('SET', key, new)
    written = written + 1
  end
end
return written
"""


class RedisOnlineStore(OnlineStore):
    """Online features in Redis.

        store = RedisOnlineStore("redis://:secret@cache.internal:6379/0?prefix=churn")

    Each (view, entity key) is one string ``PREFIX:VIEW:KEY`` holding the event timestamp (20
    digits) followed by the encoded row (see :mod:`keel.features.online._codec`); the feature
    names of each layout are kept in the hash ``PREFIX:VIEW:~layouts``. A read is one ``MGET``
    of every key asked for (one round trip, one command); a write sends chunks of rows to a
    Lua script that keeps the newer row per key, several chunks per pipelined round trip. The
    ``prefix`` (default ``keel``) separates projects sharing a database. Multi-key script calls
    need a single Redis node (or keys in one cluster slot).

    Timeouts default to 2 s to connect and 5 s per command; set them in the URL
    (``?socket_timeout=0.05``) for a tighter serving path.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "keel")
        if not prefix or any(char in prefix for char in "*?[]\\"):
            raise FeatureStoreError(f"online store prefix '{prefix}' must be non-empty, no * ? [ ]")
        query.setdefault("socket_connect_timeout", "2")
        query.setdefault("socket_timeout", "5")
        self.url = display_url(url)
        self._prefix = prefix.encode()
        try:
            self._client = redis.Redis.from_url(urlunsplit(parts._replace(query=urlencode(query))))
        except ValueError as error:
            raise FeatureStoreError(f"'{self.url}' is not a Redis URL: {error}") from None
        self._script = self._client.register_script(_KEEP_NEWER)
        self._layouts = LayoutCache()

    def _key_prefix(self, view: str) -> bytes:
        return self._prefix + b":" + view.encode() + b":"

    def _layout_key(self, view: str) -> bytes:
        return self._key_prefix(view) + b"~layouts"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise OnlineStoreUnavailable(self.url, f"{type(error).__name__}: {error}") from error
        except redis.RedisError as error:
            raise FeatureStoreError(
                f"online store {self.url} failed: {type(error).__name__}: {error}"
            ) from error

    # -- the contract ----------------------------------------------------------------------------

    def write(
        self,
        view: str,
        keys: EntityKeys,
        event_timestamps: Any,
        values: Mapping[str, Any],
    ) -> int:
        encoded_keys = encode_keys(keys)
        count = len(encoded_keys)
        if count == 0:
            return 0
        if any(key is None for key in encoded_keys):
            raise FeatureStoreError("an entity key with a missing part (None/NaN) cannot be stored")
        prefix = self._key_prefix(view)
        redis_keys = [prefix + key for key in encoded_keys if key is not None]
        nanos = event_nanoseconds(event_timestamps, count)
        stamps = (nanos.astype(np.uint64) ^ np.uint64(_OFFSET)).tolist()  # ns + 2**63
        rows = encode_rows(values, count)
        stored = [
            b"%020d" % stamp + payload for stamp, payload in zip(stamps, rows.payloads, strict=True)
        ]
        written = 0
        with self._translated():
            self._client.hset(
                self._layout_key(view), rows.layout, orjson.dumps(list(rows.features))
            )
            pipeline = self._client.pipeline(transaction=False)
            pending = 0
            for start in range(0, count, WRITE_CHUNK):
                end = start + WRITE_CHUNK
                self._script(keys=redis_keys[start:end], args=stored[start:end], client=pipeline)
                pending += 1
                if pending == CHUNKS_PER_ROUND_TRIP:
                    written += sum(pipeline.execute())
                    pending = 0
            if pending:
                written += sum(pipeline.execute())
        self._layouts.add(view, rows.layout, rows.features)
        return written

    def read(self, view: str, entity_keys: EntityKeys, features: Sequence[str]) -> OnlineRows:
        encoded = encode_keys(entity_keys)
        prefix = self._key_prefix(view)
        indexes = [index for index, key in enumerate(encoded) if key is not None]
        redis_keys = [prefix + key for key in encoded if key is not None]
        stored: dict[int, tuple[int, bytes]] = {}
        with self._translated():
            if redis_keys:
                for index, value in zip(indexes, self._client.mget(redis_keys), strict=True):
                    if isinstance(value, bytes):
                        stored[index] = (int(value[:20]) - _OFFSET, value[20:])
            layouts = {payload[:12].decode() for _, payload in stored.values()}
            missing = self._layouts.missing(view, layouts)
            if missing:
                names = self._client.hmget(self._layout_key(view), missing)
                for layout, features_json in zip(missing, names, strict=True):
                    if features_json is not None:
                        self._layouts.add(view, layout, orjson.loads(features_json))
        return assemble(view, features, len(encoded), stored, self._layouts)

    def delete_view(self, view: str) -> int:
        pattern = _glob_escape(self._key_prefix(view)) + b"*"
        layouts = self._layout_key(view)
        removed = 0
        with self._translated():
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                removed += key != layouts
                batch.append(key)
                if len(batch) == 1000:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)
        return removed

    def ping(self) -> None:
        with self._translated():
            self._client.ping()

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: bytes) -> bytes:
    """``text`` matched literally by a Redis glob pattern."""
    for char in (b"\\", b"*", b"?", b"[", b"]"):
        text = text.replace(char, b"\\" + char)
    return text
