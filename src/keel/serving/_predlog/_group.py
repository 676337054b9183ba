"""Group commit's pieces: the lines a group holds, and the future its appends share."""

from __future__ import annotations

import asyncio
from typing import Any

from keel.serving._predlog._entry import KINDS


class Pending:
    """Encoded lines waiting to be written, by kind."""

    __slots__ = ("count", "lines", "size")

    def __init__(self) -> None:
        self.lines: dict[str, list[bytes]] = {kind: [] for kind in KINDS}
        self.count = 0
        self.size = 0

    def add(self, kind: str, line: bytes) -> None:
        self.lines[kind].append(line)
        self.count += 1
        self.size += len(line)

    def extend(self, other: Pending) -> None:
        for kind in KINDS:
            self.lines[kind] += other.lines[kind]
        self.count += other.count
        self.size += other.size

    def take(self, kind: str) -> None:
        """Forget the lines of ``kind`` (they were written)."""
        lines = self.lines[kind]
        self.count -= len(lines)
        self.size -= sum(len(line) for line in lines)
        self.lines[kind] = []


class SharedFuture(asyncio.Future[None]):
    """The future every append of one group awaits. Cancelling one waiting request must not
    cancel it for the others: the cancelled task gets its ``CancelledError`` once the group
    is written, like everyone else gets their return."""

    def cancel(self, msg: Any | None = None) -> bool:
        return False


class Group:
    __slots__ = ("future", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future = SharedFuture(loop=loop)
        self.pending = Pending()


def resolve(futures: list[SharedFuture]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
