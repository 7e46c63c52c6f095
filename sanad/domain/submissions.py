"""The rules of a submission, by intake or in a batch: what it must satisfy against the copy of
the registry (sanad.registry_snapshot), and the views of centres and services they judge by."""

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sanad.domain.codes import (
    MAX_CODE_LENGTH,
    request_id_violations,
    required_code_violations,
)
from sanad.domain.places import Place
from sanad.domain.privacy import is_well_formed
from sanad.errors import NotFound, PreconditionFailed, Violation, check


class Channel(StrEnum):
    """Names match sanad.v1.Channel."""

    COUNTER = "COUNTER"
    MOBILE = "MOBILE"
    API = "API"
    BATCH = "BATCH"


@dataclass(frozen=True)
class CenterView:
    """What intake knows of a centre, from the registry's watch stream."""

    id: str
    governorate_code: str
    wilayat_code: str
    licence_status: str
    licence_expires_at: datetime | None
    offered: frozenset[str]
    blocked: frozenset[str]

    def is_serving(self, now: datetime) -> bool:
        """Licence active and not past its expiry."""
        expired = self.licence_expires_at is not None and self.licence_expires_at <= now
        return self.licence_status == "ACTIVE" and not expired


@dataclass(frozen=True)
class ServiceView:
    """What intake knows of a catalogue service."""

    code: str
    agency_code: str
    fee_baisa: int
    sla_hours: int
    version: int
    active: bool


def place_of(view: CenterView) -> Place:
    """Where a centre's transactions count."""
    return Place(view.governorate_code, view.wilayat_code)


def terms_of(view: ServiceView) -> tuple[str, int, int]:
    """What a service's transactions are stored and judged with."""
    return view.agency_code, view.sla_hours, view.version


@dataclass(frozen=True)
class Submission:
    """A submission as the caller sent it."""

    request_id: str
    center_id: str
    service_code: str
    channel: Channel | None
    fee_baisa: int
    civil_number: str

    def fingerprint(self, secret: bytes) -> str:
        """Identifies the payload, so a reused request id with other content is caught.

        Keyed (HMAC under the civil-ID secret, DESIGN §6): every other part is stored with the
        transaction, so a plain hash would let anyone who reads the database recover the civil
        number by trying the few million candidates.
        """
        parts = (
            self.center_id,
            self.service_code,
            str(self.channel),
            str(self.fee_baisa),
            self.civil_number,
        )
        return hmac.new(secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def validate(
    submission: Submission,
    center: CenterView | None,
    service: ServiceView | None,
    now: datetime,
) -> tuple[CenterView, ServiceView]:
    """Field checks first (Invalid), then the registry's state (NotFound, PreconditionFailed)."""
    check(field_violations(submission, service))
    if center is None:
        raise NotFound(f"centre {submission.center_id!r} not found")
    if service is None:
        raise NotFound(f"catalogue service {submission.service_code!r} not found")
    if not center.is_serving(now):
        raise PreconditionFailed(f"centre {center.id} has no active licence")
    if not service.active:
        raise PreconditionFailed(f"catalogue service {service.code} is retired")
    if service.code not in center.offered:
        raise PreconditionFailed(f"centre {center.id} does not offer {service.code}")
    if service.code in center.blocked:
        raise PreconditionFailed(f"service {service.code} is blocked at centre {center.id}")
    return center, service


def field_violations(submission: Submission, service: ServiceView | None) -> list[Violation]:
    """Every bad field of a submission; the fee is checked against the catalogue when known."""
    found = required_code_violations("center_id", submission.center_id)
    found += required_code_violations("service_code", submission.service_code)
    if submission.channel is None:
        found.append(Violation("channel", "must be COUNTER, MOBILE, API or BATCH"))
    if submission.fee_baisa < 0:
        found.append(Violation("fee_baisa", "must not be negative"))
    if not is_well_formed(submission.civil_number):
        found.append(Violation("beneficiary_civil_number", "must be 6 to 10 digits"))
    found += request_id_violations(submission.request_id)
    if service is not None and submission.fee_baisa != service.fee_baisa:
        found.append(
            Violation("fee_baisa", f"must equal the catalogue fee of {service.fee_baisa} baisa")
        )
    return found


def claimed_fields(center: CenterView, service: ServiceView) -> dict[str, str | int]:
    """What a submission's message takes from the registry, as its claim records it: a replay
    publishes these again (as_claimed), whatever the registry says by then."""
    return {
        "governorate_code": center.governorate_code,
        "wilayat_code": center.wilayat_code,
        "agency_code": service.agency_code,
        "service_version": service.version,
        "sla_hours": service.sla_hours,
    }


def as_claimed(
    center: CenterView, service: ServiceView, fields: Mapping[str, Any] | None
) -> tuple[CenterView, ServiceView]:
    """The centre and service as a claim recorded them (claimed_fields), so a replay's message
    says what the first attempt's said, its fee and time being the claim's too. A claim
    recorded before these fields were kept has none: it replays from the registry as it is now,
    as such replays always did."""
    if not fields:
        return center, service
    return (
        replace(
            center,
            governorate_code=fields["governorate_code"],
            wilayat_code=fields["wilayat_code"],
        ),
        replace(
            service,
            agency_code=fields["agency_code"],
            version=fields["service_version"],
            sla_hours=fields["sla_hours"],
        ),
    )


def request_key(caller: str, request_id: str) -> str:
    """A hash of the caller and its request id, for the id of an idempotency record: request
    ids are unique per caller."""
    return hashlib.sha256(f"{caller}\x1f{request_id}".encode()).hexdigest()


def shown_id(value: str) -> str:
    """At most MAX_CODE_LENGTH characters of an id a caller sent, for a message that repeats it
    before (or without) validating it: a denial, a NOT_FOUND. The message is also the log
    line's and a streamed item's answer."""
    if len(value) <= MAX_CODE_LENGTH:
        return value
    return f"{value[:MAX_CODE_LENGTH]}... ({len(value)} characters)"
