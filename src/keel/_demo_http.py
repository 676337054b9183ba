"""The demo's HTTP client: JSON in and out with the standard library, errors as ServingError."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from keel.errors import ServingError


def post_json(url: str, body: Any) -> Any:
    """POST ``body`` as JSON; the decoded answer. A non-2xx answer is a ServingError."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    return _fetch(request, "POST")


def get_json(url: str, *, allow_error: bool = False, text: bool = False) -> Any:
    """GET ``url``: the decoded JSON answer (``text``: the body as text). ``allow_error``
    returns the body of a non-2xx answer too (``/readyz`` answers 503 while not ready)."""
    return _fetch(urllib.request.Request(url), "GET", allow_error=allow_error, text=text)


def _fetch(
    request: urllib.request.Request, method: str, *, allow_error: bool = False, text: bool = False
) -> Any:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            body = error.read().decode("utf-8", errors="replace")
        if not allow_error:
            raise ServingError(
                f"{method} {request.full_url} answered {error.code}: {body}"
            ) from None
    except OSError as error:
        raise ServingError(f"{method} {request.full_url} failed: {error}") from None
    return body if text else json.loads(body)
