"""A broken watch stream resumes after the last revision it applied: nothing missed or repeated."""

import asyncio
from collections.abc import AsyncIterator

import grpc

from sanad.registry_watch import Watch
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc


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
    server = grpc.aio.server()
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    applied: list[int] = []
    synced_when_applied: list[bool] = []
    watch: Watch

    def apply(changed: pb.CatalogService) -> None:
        applied.append(changed.revision)
        synced_when_applied.append(watch.synced)

    watch = Watch(
        "catalog",
        lambda since: stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=since)),
        apply,
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
        await channel.close()
        await server.stop(0)
