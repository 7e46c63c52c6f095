"""The ingest worker stores only what the broker users of SANAD_INGEST_PUBLISHERS (intake's)
published first: anyone else who may write to the transactions exchange is dead-lettered
not-allowed, before a byte of the message is read (the security hunt stored a forged
transaction with a clear civil number, an OK audit event nobody made, and a completion that
skipped intake's rules)."""

from dataclasses import dataclass, field
from typing import Any

import pytest

from sanad.amqp.copies import USER_ID_HEADER
from sanad.amqp.verdicts import Dead
from tests.unit.test_ingest_handler import FakeMessage, FakeStore, submitted
from workers.ingest.handlers import IngestHandler
from workers.ingest.settings import IngestSettings

INTAKE = frozenset({"sanad-intake"})


@dataclass
class Published(FakeMessage):
    """A delivery as the broker hands it over: the exchange it came through and the user_id
    it validated against the publisher."""

    exchange: str = "sanad.transactions"
    user_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        (Published(submitted("T1"), user_id="sanad-intake"), True),
        (Published(submitted("T1"), user_id="batch"), False),
        (Published(submitted("T1")), False),  # no user_id: nobody vouches for it
        # A parked retry back through the default exchange: its first publisher in the header.
        (Published(submitted("T1"), exchange="", headers={USER_ID_HEADER: "sanad-intake"}), True),
        (Published(submitted("T1"), exchange="", headers={USER_ID_HEADER: b"sanad-intake"}), True),
        (Published(submitted("T1"), exchange="", headers={USER_ID_HEADER: "batch"}), False),
        (Published(submitted("T1"), exchange="", user_id="sanad-intake"), False),
        # Through the exchange, a header names nobody: the sender writes its own headers.
        (
            Published(submitted("T1"), user_id="batch", headers={USER_ID_HEADER: "sanad-intake"}),
            False,
        ),
    ],
    ids=[
        "intake",
        "another-user",
        "no-user-id",
        "retry-copy",
        "retry-copy-bytes",
        "retry-copy-of-another",
        "default-exchange-without-header",
        "forged-header",
    ],
)
async def test_only_what_a_listed_publisher_sent_first_is_stored(
    message: Published, stored: bool
) -> None:
    store = FakeStore()
    (outcome,) = await IngestHandler(store, INTAKE)([message])  # type: ignore[list-item]
    assert bool(store.stored) is stored
    if not stored:
        assert isinstance(outcome, Dead)
        assert outcome.reason == "not-allowed"
        assert "SANAD_INGEST_PUBLISHERS" in outcome.detail


async def test_without_listed_publishers_anyones_message_is_stored_as_in_dev() -> None:
    store = FakeStore()
    await IngestHandler(store)([Published(submitted("T1"), user_id="anyone")])  # type: ignore[list-item]
    assert [doc["_id"] for doc in store.stored] == ["T1"]


@pytest.mark.parametrize(
    ("publishers", "problem"),
    [("", "an empty SANAD_INGEST_PUBLISHERS"), ("sanad-intake, guest", "guest in")],
)
def test_production_names_its_publishers_and_never_guest(publishers: str, problem: str) -> None:
    settings = IngestSettings(ingest_publishers=publishers)
    assert any(problem in p for p in settings._production_problems())
    listed = IngestSettings(ingest_publishers=" sanad-intake ,,")
    assert listed.ingest_publisher_names == {"sanad-intake"}
    assert not any("SANAD_INGEST_PUBLISHERS" in p for p in listed._production_problems())
