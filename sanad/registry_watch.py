"""Following the registry's watch streams: a local copy kept fresh with no call per request.

Intake and the batch worker follow centres and the catalogue; metrics follows centres. Each
stream resumes from the last revision it applied, so a reconnect misses nothing and applies
nothing twice; a stream is synced once it has replayed the registry's history. A registry whose
revisions fell behind the copy's (restored from a backup) refuses the resume as OUT_OF_RANGE, or
ends an open stream so; the copy is then emptied (`forget`) and the stream replays from the start,
so what the restored registry no longer holds leaves the copy too.
"""

import asyncio
import logging
from collections.abc import AsyncIterable, Callable
from typing import Any

import grpc

from sanad.rpc.channel import retry_config, service_channel
from sanad.settings import CommonSettings
from sanad.v1 import registry_pb2

log = logging.getLogger("sanad.registry_watch")

REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
# Both are reads, safe to retry before the first message.
WATCH_METHODS = ["WatchCenters", "WatchCatalog"]

# since_revision -> the stream of WatchCentersResponse or WatchCatalogResponse
OpenStream = Callable[[int], AsyncIterable[Any]]


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
    ) -> None:
        self.name = name
        self.open_stream = open_stream
        self.apply = apply
        self.forget = forget
        self.revision = 0
        self.replayed = asyncio.Event()

    @property
    def synced(self) -> bool:
        """The stream has replayed the registry's history and is live."""
        return self.replayed.is_set()

    async def run(self) -> None:
        """Follow the stream, reconnecting with backoff from the last applied revision.

        Any failure, a broken stream or a change that `apply` could not take, unsyncs the watch
        (its copy is no longer known to be current) and reconnects; only cancellation ends it.
        A change that fails is not skipped: it is fetched again after the backoff.
        """
        delay = 0.1
        while True:
            stream: AsyncIterable[Any] | None = None
            try:
                stream = self.open_stream(self.revision)
                async for message in stream:
                    self._take(message)
                    delay = 0.1
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
                    self.forget()
                    self.revision = 0
                else:
                    log.warning(
                        "registry %s stream broke (%s); reconnecting", self.name, error.code().name
                    )
            except Exception:
                log.exception("registry %s watch failed; reconnecting", self.name)
            finally:
                _cancel(stream)
            self.replayed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _take(self, message: Any) -> None:
        kind = message.WhichOneof("event")
        if kind == "synced":
            self.replayed.set()
            return
        changed = getattr(message, kind)
        self.apply(changed)
        self.revision = changed.revision


def _cancel(stream: AsyncIterable[Any] | None) -> None:
    """End an abandoned gRPC call, so the registry does not keep streaming to nobody."""
    cancel = getattr(stream, "cancel", None)
    if callable(cancel):
        cancel()
