"""Live deployment changes: every server process follows its endpoints' revisions on its own.

    watcher = RevisionWatcher(dataplane, deployments, make_runtime, interval_seconds=2.0)
    watcher.start()          # on the event loop, after the models of the startup revisions load
    watcher.status()         # for /readyz: per endpoint, the revision served and the last problem
    await watcher.stop()     # stops polling, closes the runtimes kept for rollback

Each ``interval_seconds`` the watcher asks the metadata store, per endpoint, whether the live
revision is still the one served (``DeploymentStore.changed_since``: one primary-key lookup, in
a thread). When it changed, the new revision's runtime is built and loaded in a thread (the
registry re-hashes the artifact before unpickling it; the array-model probe predicts on it),
and only once it is ready is it put in the dataplane's table: one dict assignment on the loop's
thread, so a request sees either the old runtime or the new one, never neither. Requests that
already hold the old runtime finish on it.

**Aliases.** When the live revision was set from an alias (``models:/churn@champion``), each
poll first asks ``DeploymentStore.follow_aliases``: if the alias now points elsewhere, the next
revision is written, re-pinned (one process writes it, the others find nothing to do), and is
then switched to like any other change. A move to a version that cannot be served (archived,
repeating a shadow) is reported in :meth:`status`; the endpoint stays as it is.

**Blue-green.** The runtime switched away from stays loaded for ``keep_previous_seconds``; a
revision that serves exactly what a kept runtime serves (same policy: ``keel endpoints
rollback``) switches back to it at once, without loading anything. After the delay the kept
runtime is drained and closed.

**Failures.** A revision whose model fails to load is not switched to: the old one keeps
serving, the failure is logged and shown in :meth:`status`, and loading that revision is retried
only after ``retry_seconds``. When the metadata store cannot be reached, the endpoints keep
their last known revision and the watcher keeps polling, so it catches up on its own; a load
that failed only because the store went away meanwhile (the registry reads the version's row)
is the store's failure, not the revision's, and is tried again at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.errors import KeelError, MetadataStoreError
from keel.registry import ModelRef
from keel.serving._deployments import Endpoint, Revision
from keel.serving._runtime import EndpointRuntime

if TYPE_CHECKING:
    from keel.serving._dataplane import Dataplane
    from keel.serving._deployments import DeploymentStore

logger = logging.getLogger(__name__)

RuntimeFactory = Callable[[Endpoint], EndpointRuntime]


@dataclass
class _Watch:
    """What the watcher knows about one endpoint."""

    checked_at: float | None = None
    error: str | None = None
    """The last problem: the metadata store unreachable, or a revision that failed to load."""
    failed_revision: int | None = None
    store_failing: bool = False
    """The last problem is the metadata store's: it clears once the store answers."""
    retry_at: float = 0.0
    switches: int = 0
    kept: list[tuple[EndpointRuntime, float]] = field(default_factory=list)
    """Runtimes switched away from, with the time they are closed (blue-green)."""


class RevisionWatcher:
    """Follows the live revision of every endpoint of ``dataplane``; see the module doc.

    Args:
        dataplane: whose ``runtimes`` table is switched.
        deployments: where revisions are read.
        make_runtime: builds the (not yet loaded) runtime of an endpoint at a revision, with
            the server's options (metrics observer, feature store, inline limit).
        interval_seconds: between two polls of the metadata store.
        keep_previous_seconds: how long a runtime switched away from stays loaded.
        retry_seconds: before loading a revision that failed to load again.
        on_switch: called on the loop after each switch (the server records load metrics).
    """

    def __init__(
        self,
        dataplane: Dataplane,
        deployments: DeploymentStore,
        make_runtime: RuntimeFactory,
        *,
        interval_seconds: float = 2.0,
        keep_previous_seconds: float = 300.0,
        retry_seconds: float = 30.0,
        on_switch: Callable[[EndpointRuntime], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dataplane = dataplane
        self._deployments = deployments
        self._make_runtime = make_runtime
        self.interval_seconds = interval_seconds
        self.keep_previous_seconds = keep_previous_seconds
        self.retry_seconds = retry_seconds
        self.on_switch = on_switch
        """Called on the loop after each switch with the runtime now serving."""
        self._clock = clock
        self._watches: dict[str, _Watch] = {name: _Watch() for name in dataplane.runtimes}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop polling; drain and close every kept runtime."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for watch in self._watches.values():
            kept, watch.kept = watch.kept, []
            for runtime, _ in kept:
                await runtime.aclose()

    def status(self) -> dict[str, Any]:
        """Per endpoint: the revision served, the revisions kept for rollback, the last check
        (seconds ago) and the last problem."""
        now = self._clock()
        return {
            name: {
                "revision": self._dataplane.runtimes[name].revision,
                "kept_revisions": [runtime.revision for runtime, _ in watch.kept],
                "checked_seconds_ago": (
                    None if watch.checked_at is None else round(now - watch.checked_at, 3)
                ),
                "switches": watch.switches,
                "error": watch.error,
            }
            for name, watch in sorted(self._watches.items())
        }

    @property
    def metadata_reachable(self) -> bool:
        """False while the metadata store fails to answer for some endpoint (each serves its
        last known revision meanwhile)."""
        return not any(watch.store_failing for watch in self._watches.values())

    # -- polling -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self.poll()

    async def poll(self) -> None:
        """Check every endpoint once (and close kept runtimes whose time is up)."""
        for name in list(self._watches):
            await self._check(name)
        await self._expire_kept()

    async def _check(self, name: str) -> None:
        watch = self._watches[name]
        current = self._dataplane.runtimes[name]
        try:
            if _follows_an_alias(current):
                await self._follow(name, watch)
            revision = await asyncio.to_thread(
                self._deployments.changed_since, name, current.revision
            )
        except Exception as error:  # unreachable store, endpoint deleted: keep serving
            self._store_failed(name, watch, "cannot read the live revision", error, current)
            return
        watch.checked_at = self._clock()
        if watch.store_failing:
            logger.info("endpoint '%s': the metadata store answers again", name)
            watch.error = None
            watch.store_failing = False
        if revision is None:
            return
        if revision.number == watch.failed_revision and self._clock() < watch.retry_at:
            return
        await self._switch(name, current, revision, watch)

    async def _follow(self, name: str, watch: _Watch) -> None:
        """Write the next revision if an alias the live one was set from has moved (every
        process tries; one writes it, see ``DeploymentStore.follow_aliases``). A move to a
        version that cannot be served is reported and the endpoint stays as it is."""
        try:
            followed = await asyncio.to_thread(self._deployments.follow_aliases, name)
        except MetadataStoreError:
            raise
        except KeelError as error:
            message = f"an alias moved, but the endpoint cannot follow it: {error}"
            if watch.error != message:
                logger.error("endpoint '%s': %s", name, message)
            watch.error = message
            return
        if followed is not None:
            logger.info("endpoint '%s': revision %d, %s", name, followed.number, followed.reason)

    async def _switch(
        self, name: str, current: EndpointRuntime, revision: Revision, watch: _Watch
    ) -> None:
        kept = next((entry for entry in watch.kept if entry[0].policy == revision.policy), None)
        if kept is not None:  # blue-green: the runtime is still loaded, switch back at once
            watch.kept.remove(kept)
            runtime = kept[0]
            runtime.adopt(revision)
        else:
            runtime = self._make_runtime(dataclasses.replace(current.endpoint, revision=revision))
            try:
                await asyncio.to_thread(runtime.load)
            except MetadataStoreError as error:  # not the revision's fault: retry next poll
                await runtime.aclose()
                what = f"cannot load revision {revision.number}"
                self._store_failed(name, watch, what, error, current)
                return
            except Exception as error:
                watch.failed_revision = revision.number
                watch.retry_at = self._clock() + self.retry_seconds
                watch.error = (
                    f"revision {revision.number} ({revision.policy.primary.pinned_uri}) failed "
                    f"to load, still serving revision {current.revision}: "
                    f"{type(error).__name__}: {error}"
                )
                logger.error("endpoint '%s': %s", name, watch.error)
                await runtime.aclose()
                return
        self._dataplane.runtimes[name] = runtime  # the switch: atomic on the loop's thread
        watch.kept.append((current, self._clock() + self.keep_previous_seconds))
        watch.switches += 1
        watch.failed_revision = None
        watch.error = None
        watch.store_failing = False
        logger.info(
            "endpoint '%s': switched from revision %d to %d (%s)%s",
            name,
            current.revision,
            runtime.revision,
            runtime.policy.primary.pinned_uri,
            " from the kept runtime" if kept is not None else "",
        )
        if self.on_switch is not None:
            self.on_switch(runtime)

    def _store_failed(
        self, name: str, watch: _Watch, what: str, error: Exception, current: EndpointRuntime
    ) -> None:
        """The store failed (or the endpoint is gone): keep serving, say so once."""
        message = f"{what}: {type(error).__name__}: {error}"
        if watch.error != message:
            logger.warning(
                "endpoint '%s': %s; serving revision %d", name, message, current.revision
            )
        watch.error = message
        watch.store_failing = True

    async def _expire_kept(self) -> None:
        now = self._clock()
        for watch in self._watches.values():
            expired = [entry for entry in watch.kept if entry[1] <= now]
            for entry in expired:
                watch.kept.remove(entry)
                await entry[0].aclose()


def _follows_an_alias(runtime: EndpointRuntime) -> bool:
    return any(ModelRef.parse(model.uri).alias is not None for model in runtime.policy.models())
