"""A watch's replay reads the change log in parts bounded by bytes as well as by count, so a
stream replaying services or centres with long lists never holds hundreds of them at once; and
the whole replay still arrives, in order, against the real MongoDB-wire server."""

import pytest

from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    registry_fixture,
)
from tests.integration.registry_support import visa_renewal

pytestmark = pytest.mark.integration

# About 80 KB a service: 100 required documents of 399 characters, each Arabic letter 2 bytes.
LONG_LIST = [f"{n:03d} " + "وثيقة" * 79 for n in range(100)]


async def add_heavy_service(registry: Registry, code: str) -> pb.CatalogService:
    service = visa_renewal(code)
    service.required_documents.extend(LONG_LIST)
    reply = await registry.stub.AddCatalogService(pb.AddCatalogServiceRequest(service=service))
    return reply.service


async def test_a_read_of_the_change_log_stops_once_its_changes_pass_the_byte_bound(
    registry: Registry,
) -> None:
    store = registry.app.store
    added = [await add_heavy_service(registry, f"S-{n}") for n in range(6)]

    store.replay_bytes = 200_000
    # 80 KB, 160 KB, then 240 KB: the third passes the bound and ends the read.
    first = await store.service_changes_after(0)
    assert [s.code for s in first] == ["S-0", "S-1", "S-2"]
    assert list(first[0].required_documents) == LONG_LIST
    rest = await store.service_changes_after(first[-1].revision)
    assert [s.code for s in rest] == ["S-3", "S-4", "S-5"]
    # A single change larger than the bound is still read, alone.
    store.replay_bytes = 1
    assert [s.code for s in await store.service_changes_after(0)] == ["S-0"]
    # The count bounds a read as before.
    store.replay_bytes = 10_000_000
    assert [s.code for s in await store.service_changes_after(0, limit=4)] == [
        f"S-{n}" for n in range(4)
    ]
    assert added[-1].revision == rest[-1].revision


async def test_a_watch_replays_every_change_across_reads_bounded_by_bytes(
    registry: Registry,
) -> None:
    added = [await add_heavy_service(registry, f"S-{n}") for n in range(5)]
    registry.app.store.replay_bytes = 100_000  # one or two services a read

    stream = registry.stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=0))
    try:
        replayed = [(await stream.read()).service for _ in added]
        synced = await stream.read()
    finally:
        stream.cancel()
    assert [(s.code, s.revision) for s in replayed] == [(s.code, s.revision) for s in added]
    assert all(list(s.required_documents) == LONG_LIST for s in replayed)
    assert synced.synced.revision == added[-1].revision
