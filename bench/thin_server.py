"""The thin baseline: a bare ASGI callable that parses JSON and calls ``predict_proba``.

    taskset -c 1 .venv/bin/python bench/thin_server.py --model MODEL.pkl [--port 8000]

No framework, no validation, no logging, no metrics: read the body, ``orjson.loads`` it, take
``inputs`` (one record keyed f0..f19), build a 1 x 20 float64 array in training column order,
call ``predict_proba`` on the event loop, answer ``{"probabilities": [...]}``. Any request body
that is not such a record gets a 400. It runs on uvicorn with uvloop and httptools, one
process, access log off: the least a Python server can do per prediction, which keel is
measured against (bench/serving.py).
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvicorn

from serving_models import FEATURES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def make_app(model: Any) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    predict_proba = model.predict_proba

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            inputs = orjson.loads(body)["inputs"]
            row = np.array([[inputs[name] for name in FEATURES]], dtype=np.float64)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            await respond(send, 400, orjson.dumps({"error": f"bad request: {error}"}))
            return
        probabilities = predict_proba(row)[0]
        await respond(send, 200, orjson.dumps({"probabilities": probabilities.tolist()}))

    return app


async def respond(send: Send, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a pickled classifier")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    model = pickle.loads(args.model.read_bytes())
    uvicorn.run(
        make_app(model),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
