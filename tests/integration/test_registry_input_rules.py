"""What the registry accepts into a catalogue service or a centre: fees within the batch
path's bound, codes, licence numbers and names free of control characters, one form of each
licence number, only active services offered. Through the real servicer against the real
MongoDB-wire server."""

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from pymongo import AsyncMongoClient

from sanad.domain.money import MAX_FEE_BAISA
from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    refused,
    registry_fixture,
)
from tests.integration.registry_support import visa_renewal

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


def adding(registry: Registry, service: pb.CatalogService) -> object:
    """The AddCatalogService call, to await or to expect refused."""
    return registry.stub.AddCatalogService(pb.AddCatalogServiceRequest(service=service))


async def add(registry: Registry, service: pb.CatalogService) -> pb.CatalogService:
    reply = await registry.stub.AddCatalogService(pb.AddCatalogServiceRequest(service=service))
    return reply.service


async def test_a_fee_above_the_batch_paths_bound_is_refused_by_field(registry: Registry) -> None:
    for fee in (MAX_FEE_BAISA + 1, 2**62):
        bad = await refused(adding(registry, visa_renewal("ROP-HUGE", fee)), Code.INVALID_ARGUMENT)
        assert [f for f, _ in bad] == ["service.fee_baisa"]
    added = await registry.add_service("ROP-DEAR")
    update = pb.UpdateCatalogServiceRequest(
        service=pb.CatalogService(code="ROP-DEAR", fee_baisa=MAX_FEE_BAISA + 1),
        update_mask=FieldMask(paths=["fee_baisa"]),
    )
    bad = await refused(registry.stub.UpdateCatalogService(update), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["service.fee_baisa"]
    shown = await registry.stub.GetCatalogService(pb.GetCatalogServiceRequest(code="ROP-DEAR"))
    assert shown.service == added


async def test_a_fee_at_the_bound_or_unset_is_accepted(registry: Registry) -> None:
    dear = await add(registry, visa_renewal("ROP-TOP", MAX_FEE_BAISA))
    assert dear.fee_baisa == MAX_FEE_BAISA
    free = await add(registry, visa_renewal("ROP-FREE", 0))
    assert free.fee_baisa == 0  # unset: a free service, as registry.proto says


async def test_a_licence_number_is_kept_upper_case_so_its_case_makes_no_second_centre(
    registry: Registry,
) -> None:
    first = await registry.register(licence=pb.Licence(number=" da-niz-0001 "))
    assert first.licence.number == "DA-NIZ-0001"
    for number in ("DA-NIZ-0001", "Da-Niz-0001"):
        await refused(registry.register(licence=pb.Licence(number=number)), Code.ALREADY_EXISTS)
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=first.id))).center
    assert shown.licence.number == "DA-NIZ-0001"


async def test_a_licence_number_typed_with_look_alike_characters_is_the_same_licence(
    registry: Registry,
) -> None:
    first = await registry.register(licence=pb.Licence(number="DA-SAM-0042"))
    for typed in (
        "DA-SAM-\u0660\u0660\u0664\u0662",  # Arabic-Indic digits
        "\uff24\uff21-SAM-0042",  # fullwidth letters
        "DA\u2011SAM\u20110042",  # non-breaking hyphens
    ):
        await refused(registry.register(licence=pb.Licence(number=typed)), Code.ALREADY_EXISTS)
    arabic = await registry.register(licence=pb.Licence(number="DA-SAM-\u0660\u0660\u0664\u0663"))
    assert arabic.licence.number == "DA-SAM-0043"
    for typed in ("\u0410A-SAM-0042", "DA - SAM - 0042", "DA-SAM-0042\u0301"):
        bad = await refused(
            registry.register(licence=pb.Licence(number=typed)), Code.INVALID_ARGUMENT
        )
        assert [f for f, _ in bad] == ["center.licence.number"]
    assert first.licence.number == "DA-SAM-0042"


async def test_contact_fields_may_be_empty_but_hold_no_control_characters(
    registry: Registry,
) -> None:
    contact = pb.Contact(phone="\x1b[2J\x1b[31mCLEARED", email="a@b\nlicence_status: active")
    bad = await refused(registry.register(contact=contact), Code.INVALID_ARGUMENT)
    assert bad == [
        ("center.contact.phone", "must not contain control characters"),
        ("center.contact.email", "must not contain control characters"),
    ]
    kept = await registry.register(contact=pb.Contact(phone="+968 2441 0000", address=""))
    assert kept.contact.phone == "+968 2441 0000"


async def registered_before(
    registry: Registry, mongo_url: str, database_name: str, number: str, kept_as: str
) -> None:
    """A centre registered under `number` and stored `kept_as`, as a registry from before the
    one-spelling rule kept a number: as it was sent."""
    older = await registry.register(licence=pb.Licence(number=number))
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        centres = client[database_name]["registry_centers"]
        await centres.update_one({"_id": older.id}, {"$set": {"licence.number": kept_as}})
    finally:
        await client.close()


async def test_a_lower_case_number_stored_before_numbers_were_upper_case_is_still_taken(
    registry: Registry, mongo_url: str, database_name: str
) -> None:
    await registered_before(registry, mongo_url, database_name, "DA-BAH-0007", "da-bah-0007")
    for number in ("da-bah-0007", "DA-BAH-0007"):
        await refused(registry.register(licence=pb.Licence(number=number)), Code.ALREADY_EXISTS)


async def test_a_number_stored_before_in_another_spelling_is_still_taken(
    registry: Registry, mongo_url: str, database_name: str
) -> None:
    # Arabic-Indic digits and a fullwidth letter, as typed.
    typed = "DA-\uff29ZK-\u0660\u0660\u0660\u0669"
    await registered_before(registry, mongo_url, database_name, "DA-IZK-0009", typed)
    for number in ("DA-IZK-0009", "da-izk-0009", "DA-IZK-\u06f0\u06f0\u06f0\u06f9"):
        await refused(registry.register(licence=pb.Licence(number=number)), Code.ALREADY_EXISTS)
    other = await registry.register(licence=pb.Licence(number="DA-IZK-0019"))
    assert other.licence.number == "DA-IZK-0019"


@pytest.mark.parametrize("number", ["DA-\n1", "DA-\x001", "DA-\t1", "DA-\u200b1", "DA\u2028-1"])
async def test_a_licence_number_with_control_or_invisible_characters_is_refused(
    registry: Registry, number: str
) -> None:
    bad = await refused(registry.register(licence=pb.Licence(number=number)), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["center.licence.number"]


@pytest.mark.parametrize("code", ["ROP\nVISA X", "ROP\x00V", "ROP\u200bV", "ROP\x7fV"])
async def test_a_catalogue_code_with_control_or_invisible_characters_is_refused(
    registry: Registry, code: str
) -> None:
    bad = await refused(adding(registry, visa_renewal(code)), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["service.code"]


async def test_a_name_of_only_control_or_invisible_characters_is_refused_by_field(
    registry: Registry,
) -> None:
    bad = await refused(
        registry.register(name_ar="\u200f", name_en="\x01", owner_establishment="\u200b \u2060"),
        Code.INVALID_ARGUMENT,
    )
    assert dict(bad) == {
        "center.name_ar": "is required",
        "center.name_en": "must not contain control characters",
        "center.owner_establishment": "is required",
    }
    bad = await refused(registry.register(name_en="Abraj\nCentre"), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["center.name_en"]


async def test_an_arabic_name_may_hold_joiners_and_direction_marks_between_its_letters(
    registry: Registry,
) -> None:
    name = "مركز\u200cأبراج \u200fالشرق"
    center = await registry.register(name_ar=name)
    assert center.name_ar == name


async def test_catalogue_names_and_documents_hold_visible_text_without_control_characters(
    registry: Registry,
) -> None:
    service = visa_renewal("ROP-DOCS")
    service.name_en = "Visa\r\nrenewal"
    service.name_ar = "\u200f"
    service.required_documents.extend(["", " \u200b", "passport", "civil\x00id"])
    bad = await refused(adding(registry, service), Code.INVALID_ARGUMENT)
    assert dict(bad) == {
        "service.name_en": "must not contain control characters",
        "service.name_ar": "is required",
        "service.required_documents[0]": "is required",
        "service.required_documents[1]": "is required",
        "service.required_documents[3]": "must not contain control characters",
    }


async def test_a_centre_may_not_offer_a_retired_service_but_may_keep_it_blocked(
    registry: Registry,
) -> None:
    for code in ("ROP-OLD", "ROP-NEW"):
        await registry.add_service(code)
    await registry.stub.RetireCatalogService(pb.RetireCatalogServiceRequest(code="ROP-OLD"))
    bad = await refused(
        registry.register(offered_service_codes=["ROP-NEW", "ROP-OLD"]), Code.INVALID_ARGUMENT
    )
    assert [f for f, _ in bad] == ["center.offered_service_codes[1]"]
    center = await registry.register(offered_service_codes=["ROP-NEW"])
    request = pb.SetCenterServicesRequest(
        center_id=center.id, offered_service_codes=["ROP-OLD", "ROP-NEW"]
    )
    bad = await refused(registry.stub.SetCenterServices(request), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["offered_service_codes[0]"]
    request = pb.SetCenterServicesRequest(
        center_id=center.id, offered_service_codes=["ROP-NEW"], blocked_service_codes=["ROP-OLD"]
    )
    changed = (await registry.stub.SetCenterServices(request)).center
    assert list(changed.blocked_service_codes) == ["ROP-OLD"]


async def test_a_service_retired_while_offered_may_stay_in_the_list_sent_back(
    registry: Registry,
) -> None:
    # The centre offered it before it was retired: its list, sent back with a change elsewhere,
    # is not refused for it (registry helper: every SetCenterServices keeping the list was
    # INVALID_ARGUMENT until the code was removed). A retired code still cannot be added.
    for code in ("ROP-KEPT", "ROP-OTHER", "ROP-GONE"):
        await registry.add_service(code)
    center = await registry.register(offered_service_codes=["ROP-KEPT", "ROP-OTHER"])
    for code in ("ROP-KEPT", "ROP-GONE"):
        await registry.stub.RetireCatalogService(pb.RetireCatalogServiceRequest(code=code))
    request = pb.SetCenterServicesRequest(
        center_id=center.id,
        offered_service_codes=["ROP-KEPT", "ROP-OTHER"],
        blocked_service_codes=["ROP-OTHER"],
    )
    changed = (await registry.stub.SetCenterServices(request)).center
    assert (list(changed.offered_service_codes), list(changed.blocked_service_codes)) == (
        ["ROP-KEPT", "ROP-OTHER"],
        ["ROP-OTHER"],
    )
    request = pb.SetCenterServicesRequest(
        center_id=center.id, offered_service_codes=["ROP-KEPT", "ROP-GONE"]
    )
    bad = await refused(registry.stub.SetCenterServices(request), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["offered_service_codes[1]"]


async def test_an_update_that_changes_nothing_makes_no_new_version(registry: Registry) -> None:
    # A retried UpdateCatalogService (the reply lost) made version 3 with version 2's fee
    # (registry helper): a version now marks a change.
    await registry.add_service("ROP-SAME")

    def fee(baisa: int) -> object:
        return registry.stub.UpdateCatalogService(
            pb.UpdateCatalogServiceRequest(
                service=pb.CatalogService(code="ROP-SAME", fee_baisa=baisa),
                update_mask=FieldMask(paths=["fee_baisa"]),
            )
        )

    first = (await fee(6000)).service  # type: ignore[attr-defined]
    again = (await fee(6000)).service  # type: ignore[attr-defined]
    assert (first.version, again.version, again.fee_baisa) == (2, 2, 6000)
    assert again.revision == first.revision
    assert (await fee(7000)).service.version == 3  # type: ignore[attr-defined]
