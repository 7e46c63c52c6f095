"""The reference-data lists come back by code, as registry.proto promises, not in file order;
a filter code is bounded as every code a request names."""

from typing import Any, cast

import pytest

from sanad.errors import Invalid
from sanad.v1 import registry_pb2 as pb
from services.registry.catalog import CatalogOperations
from services.registry.centers import CenterOperations
from services.registry.operations import ChangeFeed, Store
from services.registry.reference import ReferenceData
from services.registry.servicer import RegistryServicer

# The reference RPCs read only the packaged data: no store is needed, nor a gRPC context.
NO_STORE = cast(Store, None)
NO_CONTEXT = cast(Any, None)


@pytest.fixture
def servicer() -> RegistryServicer:
    reference = ReferenceData.load()
    feed = ChangeFeed()
    return RegistryServicer(
        CenterOperations(NO_STORE, reference, feed),
        CatalogOperations(NO_STORE, reference, feed, "MOCIIP"),
    )


def codes(items: Any) -> list[str]:
    return [item.code for item in items]


async def test_governorates_and_their_wilayats_are_listed_by_code(
    servicer: RegistryServicer,
) -> None:
    reply = await servicer.ListGovernorates(pb.ListGovernoratesRequest(), NO_CONTEXT)
    assert len(reply.governorates) == 11
    assert codes(reply.governorates) == sorted(codes(reply.governorates))
    for governorate in reply.governorates:
        assert codes(governorate.wilayats) == sorted(codes(governorate.wilayats))


async def test_wilayats_are_listed_by_code_for_one_governorate_and_for_all(
    servicer: RegistryServicer,
) -> None:
    every = await servicer.ListWilayats(pb.ListWilayatsRequest(), NO_CONTEXT)
    assert codes(every.wilayats) == sorted(codes(every.wilayats))
    dakhiliyah = await servicer.ListWilayats(
        pb.ListWilayatsRequest(governorate_code="DA"), NO_CONTEXT
    )
    assert len(dakhiliyah.wilayats) == 9
    assert codes(dakhiliyah.wilayats) == sorted(codes(dakhiliyah.wilayats))


async def test_agencies_are_listed_by_code(servicer: RegistryServicer) -> None:
    reply = await servicer.ListAgencies(pb.ListAgenciesRequest(), NO_CONTEXT)
    assert "ROP" in codes(reply.agencies)
    assert codes(reply.agencies) == sorted(codes(reply.agencies))


async def test_a_governorate_filter_longer_than_any_code_is_invalid_naming_it(
    servicer: RegistryServicer,
) -> None:
    request = pb.ListWilayatsRequest(governorate_code="Z" * 10_000)
    with pytest.raises(Invalid) as caught:
        await servicer.ListWilayats(request, NO_CONTEXT)
    assert [violation.field for violation in caught.value.violations] == ["governorate_code"]
    assert "Z" * 129 not in str(caught.value)
