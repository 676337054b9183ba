"""What the server's route handlers share: the request they get, how they answer, and the
reading of a request's body under the size limit (ASGI types included).

    request = Request(params, await read_body(headers, receive, limit), headers, key)
    return ok({"status": "alive"})          # (200, b'{"status":"alive"}', b"application/json")
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from keel.serving._dataplane import Problem

if TYPE_CHECKING:
    from keel.serving._keys import KeyRecord

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Request:
    """What a handler gets: the path parameters and the raw body; it names the endpoint and
    model version it served so the request is counted under them. ``key`` is the API key the
    request was authenticated with (None on an open route, or with auth off)."""

    __slots__ = ("api", "body", "endpoint", "headers", "key", "params", "version")

    def __init__(
        self,
        params: list[str],
        body: bytes,
        headers: dict[bytes, bytes] | None = None,
        key: KeyRecord | None = None,
    ) -> None:
        self.params = params
        self.body = body
        self.headers = headers or {}
        self.key = key
        self.api = "other"
        self.endpoint = ""
        self.version = ""

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as error:
            # orjson keeps to RFC 8259; Python's json (and clients built on it) also write NaN
            # and Infinity, which the signature then accepts or refuses field by field.
            try:
                return json.loads(self.body)
            except (ValueError, UnicodeDecodeError):
                raise Problem(
                    400, "malformed_json", f"the body is not valid JSON: {error}"
                ) from None


Response = tuple[int, bytes, bytes]
"""What a handler answers: status, body, content type."""

JSON = b"application/json"


def ok(body: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return status, orjson.dumps(body), JSON


async def read_body(headers: Mapping[bytes, bytes], receive: Receive, limit: int) -> bytes:
    """The request's whole body; 413 as soon as the declared or received size is over
    ``limit`` (before reading a declared oversize body at all), 400 for a bad Content-Length."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise Problem(400, "bad_request", "Content-Length is not a number") from None
        if length > limit:
            raise too_large(length, limit)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise too_large(len(body), limit)
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> Problem:
    return Problem(
        413, "payload_too_large", f"the body has {size} bytes, more than the limit of {limit}"
    )
