"""A migrated item under a request id a live transaction holds is another payload: refused on
request_id, never answered with the live transaction (its history and rating would be lost)."""

from workers.batch.domain import Fingerprints, RequestOf

LIVE = RequestOf("key", "tx", "tx")
MIGRATED = RequestOf("key", "tx+history", "tx")


def test_a_migrated_item_does_not_match_a_live_items_record() -> None:
    assert not MIGRATED.matches(Fingerprints("tx", None, migrated=False))


def test_a_migrated_item_matches_a_record_of_a_migrated_transaction_from_before_session_25() -> (
    None
):
    assert MIGRATED.matches(Fingerprints("tx", None, migrated=True))


def test_a_migrated_item_matches_its_own_record_and_a_session_25_record() -> None:
    assert MIGRATED.matches(Fingerprints("tx", "tx+history", migrated=True))
    assert MIGRATED.matches(Fingerprints("tx+history", None, migrated=True))


def test_a_live_item_matches_a_live_record_but_not_a_migrated_one() -> None:
    assert LIVE.matches(Fingerprints("tx", None, migrated=False))
    assert not LIVE.matches(Fingerprints("tx", "tx+history", migrated=True))
