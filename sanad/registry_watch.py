"""Following the registry's watch streams: a local copy kept fresh with no call per request.

Intake and the batch worker follow centres and the catalogue; metrics follows centres. Each
stream resumes from the last revision it applied, so a reconnect misses nothing and applies
nothing twice; a stream is synced once it has replayed the registry's history. A registry whose
revisions fell behind the copy's (restored from a backup) refuses the resume as OUT_OF_RANGE, or
ends an open stream so, and so does one that gave the copy's last revision to another change
since (restored, then changed again: the resume names that change's update time too); the copy
is then emptied (`forget`) and the stream replays from the start, so what the restored registry
no longer holds leaves the copy too.

A copy that has replayed stays usable for a grace after its stream breaks (`outage_grace_s`):
a single registry being restarted or redeployed changes nothing while nobody reaches it, and
the resumed stream brings whatever changed. With several replicas the others may take changes
meanwhile (a replicas helper: a suspension through registry B while this process's registry A
was down was not seen for the grace), so the grace bounds how stale the copy may be. Past the
grace the copy is not usable until the stream is back.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Callable
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.rpc.channel import retry_config, service_channel
from sanad.settings import CommonSettings
from sanad.v1 import registry_pb2

log = logging.getLogger("sanad.registry_watch")

REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
# Both are reads, safe to retry before the first message.
WATCH_METHODS = ["WatchCenters", "WatchCatalog"]

# (since_revision, since_update_time) -> the stream of WatchCentersResponse or
# WatchCatalogResponse
OpenStream = Callable[[int, Timestamp | None], AsyncIterable[Any]]


def opener(method: Callable[[Any], AsyncIterable[Any]], request: type[Any]) -> OpenStream:
    """The OpenStream of a registry watch method (stub.WatchCenters and WatchCentersRequest,
    say)."""
    return lambda since, at: method(request(since_revision=since, since_update_time=at))


def registry_channel(settings: CommonSettings, target: str) -> grpc.aio.Channel:
    """A channel to the registry that retries opening the watch streams."""
    return service_channel(settings, target, retry_config(REGISTRY_SERVICE, WATCH_METHODS))


class Watch:
    """One watch stream followed forever; `apply` receives each changed centre or service, and
    `forget` empties the copy before a replay from the start."""

    def __init__(
        self,
        name: str,
        open_stream: OpenStream,
        apply: Callable[[Any], None],
        forget: Callable[[], None],
        outage_grace_s: float = 0.0,
        *,
        backoff_s: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        """backoff_s: the first and the longest pause before reconnecting."""
        self.name = name
        self.open_stream = open_stream
        self.apply = apply
        self.forget = forget
        self.outage_grace_s = outage_grace_s
        self.first_delay_s, self.max_delay_s = backoff_s
        self.revision = 0
        # The update time of the change at revision, as sent: a resume names it, so a registry
        # restored and changed since refuses the resume rather than skip its new changes.
        self.update_time: Timestamp | None = None
        self.replayed = asyncio.Event()
        # When the stream of a replayed copy broke (time.monotonic); None while the stream is
        # live, and while the copy is incomplete (its first replay, or a replay from the start).
        self._lost_at: float | None = None
        self._grace_over_logged = False

    @property
    def synced(self) -> bool:
        """The stream has replayed the registry's history and is live."""
        return self.replayed.is_set()

    @property
    def usable(self) -> bool:
        """The copy may be relied on: its stream is live, or the stream of a replayed copy broke
        less than `outage_grace_s` ago."""
        if self.synced:
            return True
        lost_for = self.lost_for_s()
        return lost_for is not None and lost_for < self.outage_grace_s

    def lost_for_s(self) -> float | None:
        """How long ago the stream of a replayed copy broke; None while it is live or the copy
        has never been complete."""
        return None if self._lost_at is None else time.monotonic() - self._lost_at

    async def run(self) -> None:
        """Follow the stream, reconnecting with backoff from the last applied revision.

        Any failure, a broken stream or a change that `apply` could not take, unsyncs the watch
        (its copy is no longer known to be current) and reconnects; only cancellation ends it.
        A change that fails is not skipped: it is fetched again after the backoff.
        """
        delay = self.first_delay_s
        while True:
            stream: AsyncIterable[Any] | None = None
            try:
                stream = self.open_stream(self.revision, self.update_time)
                async for message in stream:
                    self._take(message)
                    delay = self.first_delay_s
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.OUT_OF_RANGE:
                    # The registry's revisions are behind ours (a restored database): what we
                    # applied may not be what it holds, and what it was restored without (a
                    # centre registered after the backup) would stay in the copy. Empty the
                    # copy and replay everything; until the replay ends the watch is unsynced,
                    # as during any reconnect.
                    log.warning(
                        "registry %s is behind revision %d; replaying it from the start",
                        self.name,
                        self.revision,
                    )
                    self.replayed.clear()
                    self._lost_at = None
                    self.forget()
                    self.revision, self.update_time = 0, None
                elif self.synced:
                    pass  # a live stream's end is said once, however it ended (_lost)
                elif error.code() is grpc.StatusCode.UNAVAILABLE:
                    # Not live: the registry is not up yet (every start of `make run`), or
                    # is still away; the break itself was said, and the grace's end will be.
                    log.info("registry %s stream not open (UNAVAILABLE); trying again", self.name)
                else:  # refused: a certificate or role the registry does not take, say
                    log.warning(
                        "registry %s stream refused (%s: %s); trying again",
                        self.name,
                        error.code().name,
                        error.details(),
                    )
            except Exception:
                log.exception("registry %s watch failed; reconnecting", self.name)
            finally:
                _cancel(stream)
            self._lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay_s)

    def _lost(self) -> None:
        """The stream ended: the copy is usable for the grace if it had replayed."""
        if self.replayed.is_set():
            # An error, or a clean end: a registry that stops ends its streams with OK.
            log.warning(
                "registry %s stream ended; reconnecting, the copy used meanwhile for up to %g s",
                self.name,
                self.outage_grace_s,
            )
            self.replayed.clear()
            self._lost_at = time.monotonic()
            self._grace_over_logged = False
        elif not self._grace_over_logged and self._lost_at is not None and not self.usable:
            self._grace_over_logged = True
            log.warning(
                "registry %s stream lost %.0f s ago; its copy is not used until the stream is back",
                self.name,
                self.lost_for_s(),
            )

    def _take(self, message: Any) -> None:
        kind = message.WhichOneof("event")
        if kind == "synced":
            self.replayed.set()
            self._lost_at = None
            return
        changed = getattr(message, kind)
        self.apply(changed)
        self.revision = changed.revision
        self.update_time = changed.update_time if changed.HasField("update_time") else None


def _cancel(stream: AsyncIterable[Any] | None) -> None:
    """End an abandoned gRPC call, so the registry does not keep streaming to nobody."""
    cancel = getattr(stream, "cancel", None)
    if callable(cancel):
        cancel()
