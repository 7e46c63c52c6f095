"""A broken watch stream resumes after the last revision it applied: nothing missed or repeated."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from sanad.registry_watch import Watch, opener
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from tests.unit.waiting import until


@asynccontextmanager
async def served(
    registry: registry_pb2_grpc.RegistryServiceServicer,
) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    """A stub of `registry` served on a port of its own, stopped afterwards."""
    server = grpc.aio.server()
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield registry_pb2_grpc.RegistryServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0)


def service(revision: int) -> pb.CatalogService:
    return pb.CatalogService(code=f"S{revision}", revision=revision)


class BreakingRegistry(registry_pb2_grpc.RegistryServiceServicer):
    """The first stream sends revisions 1 and 2, then breaks; later ones replay from the ask."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.history = [service(r) for r in (1, 2, 3)]
        self.resumed = asyncio.Event()

    async def WatchCatalog(
        self, request: pb.WatchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCatalogResponse]:
        self.asked.append(request.since_revision)
        if len(self.asked) == 1:
            for item in self.history[:2]:
                yield pb.WatchCatalogResponse(service=item)
            yield pb.WatchCatalogResponse(synced=pb.WatchSynced(revision=2))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry restarting")
        for item in self.history:
            if item.revision > request.since_revision:
                yield pb.WatchCatalogResponse(service=item)
        yield pb.WatchCatalogResponse(synced=pb.WatchSynced(revision=3))
        self.resumed.set()
        await asyncio.Event().wait()


async def test_a_broken_stream_resumes_after_its_last_revision_and_is_unsynced_meanwhile() -> None:
    registry = BreakingRegistry()
    async with served(registry) as stub:
        applied: list[int] = []
        synced_when_applied: list[bool] = []
        watch: Watch

        def apply(changed: pb.CatalogService) -> None:
            applied.append(changed.revision)
            synced_when_applied.append(watch.synced)

        watch = Watch(
            "catalog",
            opener(stub.WatchCatalog, pb.WatchCatalogRequest),
            apply,
            applied.clear,
        )
        following = asyncio.create_task(watch.run())
        try:
            await asyncio.wait_for(registry.resumed.wait(), timeout=10)
            await asyncio.wait_for(watch.replayed.wait(), timeout=10)
            assert registry.asked == [0, 2]
            assert applied == [1, 2, 3]
            # Revision 3 arrived during the second replay, after the break had unsynced the watch.
            assert synced_when_applied == [False, False, False]
            assert watch.synced
            assert watch.revision == 3
        finally:
            following.cancel()


async def test_a_change_that_fails_to_apply_unsyncs_the_watch_and_is_fetched_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    history = [service(r) for r in (1, 2, 3)]
    asked: list[int] = []
    synced_when_asked: list[bool] = []
    applied: list[int] = []
    resynced = asyncio.Event()
    watch: Watch

    async def open_stream(since: int, at: object) -> AsyncIterator[pb.WatchCatalogResponse]:
        asked.append(since)
        synced_when_asked.append(watch.synced)
        for item in history[since : since + 1] if len(asked) == 1 else history[since:]:
            yield pb.WatchCatalogResponse(service=item)
        yield pb.WatchCatalogResponse(synced=pb.WatchSynced(revision=history[-1].revision))
        if len(asked) == 1:  # the live change after the replay: the one apply fails on
            yield pb.WatchCatalogResponse(service=history[1])
        resynced.set()  # runs once the watch took the synced message and asks for more
        await asyncio.Event().wait()

    def apply(changed: pb.CatalogService) -> None:
        if changed.revision == 2 and 2 not in failed:
            failed.add(2)
            raise RuntimeError("snapshot could not take the change")
        applied.append(changed.revision)

    failed: set[int] = set()
    watch = Watch("catalog", open_stream, apply, applied.clear)
    following = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(resynced.wait(), timeout=5)
        assert watch.synced
        assert not following.done()
        assert asked == [0, 1]
        assert synced_when_asked == [False, False]  # unsynced before reconnecting
        assert applied == [1, 2, 3]
        assert watch.revision == 3
        failures = [
            r
            for r in caplog.records
            if r.name == "sanad.registry_watch" and r.levelno >= logging.ERROR
        ]
        assert [r.exc_info is not None for r in failures] == [True]
    finally:
        following.cancel()


class RestoredRegistry(registry_pb2_grpc.RegistryServiceServicer):
    """Restored from a backup: its latest revision (1) is behind what the watcher applied (5),
    so it refuses the resume as the real registry does, and serves a replay from the start."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.replayed = asyncio.Event()

    async def WatchCatalog(
        self, request: pb.WatchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCatalogResponse]:
        self.asked.append(request.since_revision)
        if request.since_revision > 1:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "since_revision is past revision 1")
        yield pb.WatchCatalogResponse(service=service(1))
        yield pb.WatchCatalogResponse(synced=pb.WatchSynced(revision=1))
        self.replayed.set()
        await asyncio.Event().wait()


async def test_a_registry_behind_the_copy_is_replayed_from_the_start_into_an_empty_copy() -> None:
    registry = RestoredRegistry()
    async with served(registry) as stub:
        # What the copy holds before the registry was restored to revision 1: S5 was added
        # after the backup, so the restored registry does not have it.
        copy = {"S1": 1, "S5": 5}

        def apply(changed: pb.CatalogService) -> None:
            copy[changed.code] = changed.revision

        watch = Watch(
            "catalog",
            opener(stub.WatchCatalog, pb.WatchCatalogRequest),
            apply,
            copy.clear,
        )
        watch.revision = 5
        following = asyncio.create_task(watch.run())
        try:
            await asyncio.wait_for(registry.replayed.wait(), timeout=10)
            await asyncio.wait_for(watch.replayed.wait(), timeout=10)
            assert registry.asked == [5, 0]
            assert copy == {"S1": 1}
            assert watch.revision == 1
        finally:
            following.cancel()


class RestartingRegistry(registry_pb2_grpc.RegistryServiceServicer):
    """Replays revision 1 and goes live, then goes down (every stream refused) until `back`."""

    # How its live stream ends as it goes down: UNAVAILABLE, or OK as the real registry's
    # streams end when it stops.
    ends_cleanly = False

    def __init__(self) -> None:
        self.went_down = asyncio.Event()
        self.back = asyncio.Event()
        self.streams = 0

    async def WatchCatalog(
        self, request: pb.WatchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCatalogResponse]:
        self.streams += 1
        if self.streams > 1 and not self.back.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry restarting")
        if request.since_revision < 1:
            yield pb.WatchCatalogResponse(service=service(1))
        yield pb.WatchCatalogResponse(synced=pb.WatchSynced(revision=1))
        if self.streams == 1:
            self.went_down.set()
            if self.ends_cleanly:
                return
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry restarting")
        await asyncio.Event().wait()


@asynccontextmanager
async def followed(
    registry: registry_pb2_grpc.RegistryServiceServicer, grace_s: float
) -> AsyncIterator[Watch]:
    """registry served, and a watch of its catalogue with this outage grace following it until
    the block ends."""
    async with served(registry) as stub:
        watch = Watch(
            "catalog",
            opener(stub.WatchCatalog, pb.WatchCatalogRequest),
            lambda changed: None,
            lambda: None,
            outage_grace_s=grace_s,
            backoff_s=(0.01, 0.05),  # reconnects within a test's moments
        )
        task = asyncio.create_task(watch.run())
        try:
            yield watch
        finally:
            task.cancel()


async def test_a_replayed_copy_stays_usable_through_a_registry_restart_within_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "sanad.registry_watch")
    registry = RestartingRegistry()
    async with followed(registry, grace_s=30) as watch:
        await asyncio.wait_for(registry.went_down.wait(), timeout=10)
        await until(lambda: not watch.synced)
        await until(lambda: registry.streams >= 3)  # reconnects refused meanwhile
        assert watch.usable
        lost_for = watch.lost_for_s()
        assert lost_for is not None
        assert 0 <= lost_for < 30
        registry.back.set()
        await asyncio.wait_for(watch.replayed.wait(), timeout=10)
        assert watch.usable
        assert watch.lost_for_s() is None
        # The break is a warning; the refused reconnects after it are not.
        said = [(r.levelno, r.getMessage()) for r in caplog.records]
        assert [m for level, m in said if level == logging.WARNING] == [
            "registry catalog stream ended; reconnecting, the copy used meanwhile for up to 30 s"
        ]
        assert len([m for level, m in said if "not open" in m and level == logging.INFO]) >= 2


class StoppingRegistry(RestartingRegistry):
    """As the real registry stops: its live stream ends with OK, not an error."""

    ends_cleanly = True


async def test_a_stream_the_registry_ends_cleanly_as_it_stops_is_a_break_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = StoppingRegistry()
    async with followed(registry, grace_s=30) as watch:
        await asyncio.wait_for(registry.went_down.wait(), timeout=10)
        await until(lambda: registry.streams >= 3)
        assert not watch.synced
        assert watch.usable
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warned == [
            "registry catalog stream ended; reconnecting, the copy used meanwhile for up to 30 s"
        ]


async def test_past_the_grace_the_copy_is_not_usable_until_the_stream_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = RestartingRegistry()
    async with followed(registry, grace_s=0.3) as watch:
        await asyncio.wait_for(registry.went_down.wait(), timeout=10)
        # The replayed copy's stream broke (before its replay the copy is unusable too).
        await until(lambda: watch.lost_for_s() is not None)
        await until(lambda: not watch.usable)
        # Said once, at the first reconnect after the grace, not at every one.
        past_grace = registry.streams
        await until(lambda: registry.streams >= past_grace + 5, within_s=20)
        over = [r for r in caplog.records if "not used until the stream is back" in r.message]
        assert len(over) == 1
        registry.back.set()
        await asyncio.wait_for(watch.replayed.wait(), timeout=10)
        assert watch.usable


async def test_a_copy_that_never_replayed_is_not_usable_whatever_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = RestartingRegistry()
    registry.streams = 1  # down from the start
    async with followed(registry, grace_s=3600) as watch:
        await until(lambda: registry.streams >= 3)
        assert not watch.usable
        assert watch.lost_for_s() is None
        # A registry not up yet, as at every start of the stack, is no warning.
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class RestartedFromBackup(RestoredRegistry):
    """Live at revision 5, then restarted from a backup at revision 1: the resume is refused
    as OUT_OF_RANGE, and the replay from the start brings revision 1 alone."""

    async def WatchCatalog(
        self, request: pb.WatchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCatalogResponse]:
        if not self.asked:
            self.asked.append(request.since_revision)
            for revision in range(1, 6):
                yield pb.WatchCatalogResponse(service=service(revision))
            yield pb.WatchCatalogResponse(synced=pb.WatchSynced(revision=5))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry restarting")
        async for answer in super().WatchCatalog(request, context):
            yield answer


async def test_a_copy_emptied_for_a_replay_from_the_start_is_not_usable_within_the_grace() -> None:
    registry = RestartedFromBackup()
    async with served(registry) as stub:
        usable_when_forgotten: list[bool] = []
        watch: Watch = Watch(
            "catalog",
            opener(stub.WatchCatalog, pb.WatchCatalogRequest),
            lambda changed: None,
            lambda: usable_when_forgotten.append(watch.usable),
            outage_grace_s=3600,
        )
        task = asyncio.create_task(watch.run())
        try:
            await asyncio.wait_for(registry.replayed.wait(), timeout=10)
            assert registry.asked == [0, 5, 0]
            assert usable_when_forgotten == [False]
        finally:
            task.cancel()


class RefusingRegistry(registry_pb2_grpc.RegistryServiceServicer):
    async def WatchCatalog(
        self, request: pb.WatchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCatalogResponse]:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "service 'intake' may not watch")
        yield pb.WatchCatalogResponse()  # never reached: makes this a stream


async def test_a_stream_the_registry_refuses_is_a_warning_not_a_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with followed(RefusingRegistry(), grace_s=30) as watch:
        await until(lambda: any(r.levelno == logging.WARNING for r in caplog.records))
        assert not watch.usable
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warned[0] == (
            "registry catalog stream refused (PERMISSION_DENIED: service 'intake' may not"
            " watch); trying again"
        )
