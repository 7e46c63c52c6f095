"""ListCenters, the catalogue RPCs and the watch streams against the real MongoDB-wire server."""

import asyncio
import unicodedata

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    lapse,
    refused,
    registry_fixture,
)

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


async def list_all(registry: Registry, request: pb.ListCentersRequest) -> list[list[str]]:
    """Every page's centre names, following next_page_token to the end."""
    pages: list[list[str]] = []
    while True:
        reply = await registry.stub.ListCenters(request)
        pages.append([c.name_en for c in reply.centers])
        if not reply.next_page_token:
            return pages
        request.page_token = reply.next_page_token


async def test_list_centers_pages_through_every_match_once(registry: Registry) -> None:
    names = [f"Centre {n}" for n in range(7)]
    for name in names:
        await registry.register(name_en=name)
    pages = await list_all(registry, pb.ListCentersRequest(page_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(n for p in pages for n in p) == names
    everything = await registry.stub.ListCenters(pb.ListCentersRequest())
    assert (len(everything.centers), everything.next_page_token) == (7, "")


async def test_list_centers_filters_by_place_status_service_and_name(registry: Registry) -> None:
    await registry.add_service("ROP-1")
    nizwa = await registry.register("مركز أبراج الشرق", name_en="Abraj Al Sharq")
    bahla = await registry.register(
        "مَرْكَز النُّور", name_en="Al Noor", wilayat_code="DA-BAH", offered_service_codes=["ROP-1"]
    )
    seeb = await registry.register(
        "مكتبة السيب", name_en="Seeb", governorate_code="MA", wilayat_code="MA-SEB"
    )
    # Offers ROP-1 under a sanction: it may not serve it, and is not listed for it.
    await registry.register(
        "مركز الحمراء",
        name_en="Al Hamra",
        wilayat_code="DA-HAM",
        offered_service_codes=["ROP-1"],
        blocked_service_codes=["ROP-1"],
    )
    await registry.act(bahla.id, pb.LICENCE_ACTION_APPROVE, pb.LICENCE_ACTION_ACTIVATE)
    await registry.act(seeb.id, pb.LICENCE_ACTION_APPROVE, pb.LICENCE_ACTION_ACTIVATE)
    await lapse(registry, seeb.id)

    async def found(**filters: object) -> set[str]:
        reply = await registry.stub.ListCenters(pb.ListCentersRequest(**filters))  # type: ignore[arg-type]
        return {c.name_en for c in reply.centers}

    assert await found(governorate_code="DA") == {"Abraj Al Sharq", "Al Noor", "Al Hamra"}
    assert await found(wilayat_code="MA-SEB") == {"Seeb"}
    assert await found(licence_status=pb.LICENCE_STATUS_ACTIVE) == {"Al Noor"}
    assert await found(licence_status=pb.LICENCE_STATUS_EXPIRED) == {"Seeb"}
    assert await found(licence_status=pb.LICENCE_STATUS_APPLIED) == {nizwa.name_en, "Al Hamra"}
    assert await found(service_code="ROP-1") == {"Al Noor"}
    assert await found(query="ابراج الشرق") == {"Abraj Al Sharq"}
    assert await found(query="النور") == {"Al Noor"}
    assert await found(query="مكتبه") == {"Seeb"}
    assert await found(query="SHARQ") == {"Abraj Al Sharq"}
    assert await found(query="(.*)") == set()
    assert await found(governorate_code="DA", query="seeb") == set()


async def test_a_name_sent_decomposed_is_found_by_its_plain_and_composed_spellings(
    registry: Registry,
) -> None:
    # NFD, as some systems send Arabic: "أ" as alef and a combining hamza above.
    center = await registry.register(unicodedata.normalize("NFD", "مركز أبراج الشرق"))
    for query in ("ابراج", "أبراج", unicodedata.normalize("NFD", "أبراج"), "\ufe83\ufe91\ufeae"):
        reply = await registry.stub.ListCenters(pb.ListCentersRequest(query=query))
        assert [c.id for c in reply.centers] == [center.id], query


async def test_a_name_holding_a_soft_hyphen_or_zero_width_space_is_found_by_what_it_shows(
    registry: Registry,
) -> None:
    center = await registry.register("مركز أبر\u200bاج", name_en="Ab\u00adraj Centre")
    for query in ("ابراج", "abraj centre"):
        reply = await registry.stub.ListCenters(pb.ListCentersRequest(query=query))
        assert [c.id for c in reply.centers] == [center.id], query


async def test_a_centre_saved_under_the_earlier_search_rule_is_found_once_the_registry_starts(
    registry: Registry,
) -> None:
    center = await registry.register("مركز أبراج الشرق", name_en="Ab\u00adraj Centre")
    # As the rule before NFKC and format characters stored it: the soft hyphen kept.
    stored = registry.app.store.centers
    await stored.update_one({"_id": center.id}, {"$set": {"search": "ab\u00adraj centre"}})
    query = pb.ListCentersRequest(query="abraj centre")
    assert list((await registry.stub.ListCenters(query)).centers) == []

    await registry.app.store.ensure_indexes()  # what the registry does as it starts

    assert [c.id for c in (await registry.stub.ListCenters(query)).centers] == [center.id]
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert shown.revision == center.revision  # derived text, not a change


async def test_list_centers_refuses_a_bad_page_token_or_size(registry: Registry) -> None:
    bad = await refused(
        registry.stub.ListCenters(pb.ListCentersRequest(page_token="garbage!")),
        Code.INVALID_ARGUMENT,
    )
    assert [f for f, _ in bad] == ["page_token"]
    bad = await refused(
        registry.stub.ListCenters(pb.ListCentersRequest(page_size=-1)), Code.INVALID_ARGUMENT
    )
    assert [f for f, _ in bad] == ["page_size"]
    bad = await refused(
        registry.stub.ListCenters(pb.ListCentersRequest(licence_status=42)),
        Code.INVALID_ARGUMENT,  # type: ignore[arg-type]
    )
    assert [f for f, _ in bad] == ["licence_status"]
    bad = await refused(
        registry.stub.ListCenters(pb.ListCentersRequest(query="x" * 201)), Code.INVALID_ARGUMENT
    )
    assert bad == [("query", "must be at most 200 characters")]
    assert await registry.stub.ListCenters(pb.ListCentersRequest(query="x" * 200)) is not None
    for query in ("abraj\x00", "\x01", "line\nbreak", "\x1f"):
        bad = await refused(
            registry.stub.ListCenters(pb.ListCentersRequest(query=query)), Code.INVALID_ARGUMENT
        )
        assert bad == [("query", "must not contain control characters")]
    # Tatweel, diacritics or joiners alone normalise to nothing: they listed every centre.
    for query in ("\u0640\u0640", "\u064e\u0650", "\u200c \u200d"):
        bad = await refused(
            registry.stub.ListCenters(pb.ListCentersRequest(query=query)), Code.INVALID_ARGUMENT
        )
        assert bad == [("query", "must hold a letter or digit besides diacritics and tatweel")]
    assert await registry.stub.ListCenters(pb.ListCentersRequest(query="  ")) is not None


async def test_a_catalogue_service_is_versioned_retired_and_listed(registry: Registry) -> None:
    stub = registry.stub
    added = await registry.add_service("ROP-VISA")
    assert (added.version, added.status) == (1, pb.CATALOG_SERVICE_STATUS_ACTIVE)
    change = pb.CatalogService(code="ROP-VISA", fee_baisa=7500, name_en="ignored")
    updated = (
        await stub.UpdateCatalogService(
            pb.UpdateCatalogServiceRequest(
                service=change, update_mask=FieldMask(paths=["fee_baisa"])
            )
        )
    ).service
    assert (updated.version, updated.fee_baisa, updated.name_en) == (2, 7500, "Visa renewal")
    assert updated.revision > added.revision
    retired = (
        await stub.RetireCatalogService(pb.RetireCatalogServiceRequest(code="ROP-VISA"))
    ).service
    assert retired.status == pb.CATALOG_SERVICE_STATUS_RETIRED
    shown = (await stub.GetCatalogService(pb.GetCatalogServiceRequest(code="ROP-VISA"))).service
    assert shown == retired
    for n in range(5):
        await registry.add_service(f"MOL-{n}", agency="MOL")

    async def codes(**filters: object) -> list[str]:
        request = pb.ListCatalogServicesRequest(page_size=2, **filters)  # type: ignore[arg-type]
        found: list[str] = []
        while True:
            reply = await stub.ListCatalogServices(request)
            found += [s.code for s in reply.services]
            if not reply.next_page_token:
                return found
            request.page_token = reply.next_page_token

    assert await codes(agency_code="MOL") == [f"MOL-{n}" for n in range(5)]
    assert await codes(status=pb.CATALOG_SERVICE_STATUS_RETIRED) == ["ROP-VISA"]
    assert len(await codes()) == 6


async def test_catalogue_errors_carry_the_right_codes(registry: Registry) -> None:
    stub = registry.stub
    await registry.add_service("ROP-X")
    await refused(registry.add_service("ROP-X"), Code.ALREADY_EXISTS)
    bad = await refused(registry.add_service("NEW", agency="NOPE"), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["service.agency_code"]

    def update(code: str, *paths: str, **values: object) -> object:
        service = pb.CatalogService(code=code, **values)  # type: ignore[arg-type]
        return stub.UpdateCatalogService(
            pb.UpdateCatalogServiceRequest(
                service=service, update_mask=FieldMask(paths=list(paths))
            )
        )

    bad = await refused(update("ROP-X", "code", "agency_code", "version"), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["update_mask"] * 3
    bad = await refused(
        update("ROP-X", "sla_hours", "fee_baisa", fee_baisa=-1), Code.INVALID_ARGUMENT
    )
    assert {f for f, _ in bad} == {"service.sla_hours", "service.fee_baisa"}
    await refused(update("NOPE", "fee_baisa"), Code.NOT_FOUND)
    await refused(update("", "fee_baisa"), Code.INVALID_ARGUMENT)
    await refused(stub.GetCatalogService(pb.GetCatalogServiceRequest(code="NOPE")), Code.NOT_FOUND)
    await stub.RetireCatalogService(pb.RetireCatalogServiceRequest(code="ROP-X"))
    await refused(
        stub.RetireCatalogService(pb.RetireCatalogServiceRequest(code="ROP-X")),
        Code.FAILED_PRECONDITION,
    )
    await refused(update("ROP-X", "fee_baisa", fee_baisa=1), Code.FAILED_PRECONDITION)
    await refused(
        stub.ListCatalogServices(pb.ListCatalogServicesRequest(page_token="x")),
        Code.INVALID_ARGUMENT,
    )


async def test_a_catalogue_watcher_sees_a_new_service_within_a_second(registry: Registry) -> None:
    stream = registry.stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=0))
    try:
        first = await asyncio.wait_for(stream.read(), 5)
        assert first.WhichOneof("event") == "synced"
        added = await registry.add_service("ROP-NEW")
        event = await asyncio.wait_for(stream.read(), 1.0)
        assert event.service == added
    finally:
        stream.cancel()


async def test_a_reconnecting_watcher_gets_exactly_the_missed_changes_in_order(
    registry: Registry,
) -> None:
    await registry.add_service("S-1")
    stream = registry.stub.WatchCatalog(pb.WatchCatalogRequest())
    seen = [await asyncio.wait_for(stream.read(), 5) for _ in range(2)]
    stream.cancel()
    assert [e.WhichOneof("event") for e in seen] == ["service", "synced"]
    left_at = seen[1].synced.revision
    missed = [await registry.add_service("S-2")]
    center = await registry.register()  # a centre change is not a catalogue change
    missed.append(
        (
            await registry.stub.UpdateCatalogService(
                pb.UpdateCatalogServiceRequest(
                    service=pb.CatalogService(code="S-1", sla_hours=12),
                    update_mask=FieldMask(paths=["sla_hours"]),
                )
            )
        ).service
    )
    missed.append(
        (
            await registry.stub.RetireCatalogService(pb.RetireCatalogServiceRequest(code="S-2"))
        ).service
    )
    again = registry.stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=left_at))
    try:
        replay = [await asyncio.wait_for(again.read(), 5) for _ in range(4)]
        assert [e.service for e in replay[:3]] == missed
        assert replay[3].synced.revision == missed[-1].revision > center.revision
        added = await registry.add_service("S-3")
        assert (await asyncio.wait_for(again.read(), 1.0)).service == added
    finally:
        again.cancel()
    centers = registry.stub.WatchCenters(pb.WatchCentersRequest(since_revision=left_at))
    try:
        event = await asyncio.wait_for(centers.read(), 5)
        assert event.center.id == center.id
        assert (await asyncio.wait_for(centers.read(), 5)).synced.revision >= center.revision
    finally:
        centers.cancel()
