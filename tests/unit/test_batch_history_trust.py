"""Migrated history (history_items) counts in the rollups the award and reports read, so only a
trusted batch user may send it: a centre's own batch user is refused as a whole, nothing stored."""

from sanad.amqp.verdicts import Dead
from sanad.settings import AuthMode, CommonSettings
from tests.unit.batch_handler_support import Message, Replies, Shared, batch, handler, with_history
from workers.batch.authorization import migration_authorizer


def test_only_trusted_users_may_send_history_items_when_auth_is_required() -> None:
    may_migrate = migration_authorizer(
        CommonSettings(auth_mode=AuthMode.REQUIRED, batch_trusted_users="migrator, loader")
    )

    assert may_migrate("migrator")
    assert may_migrate("loader")
    assert not may_migrate("batch-C1")
    assert not may_migrate("")
    assert not migration_authorizer(CommonSettings(auth_mode=AuthMode.REQUIRED))("guest")


def test_in_dev_mode_every_user_may_send_history_items() -> None:
    assert migration_authorizer(CommonSettings(auth_mode=AuthMode.DEV))("anyone")


async def test_a_centre_batch_user_sending_history_items_is_refused_whole_and_nothing_stored() -> (
    None
):
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, may_migrate=False)
    forged = with_history(batch("r-1"))

    outcome = await worker.handle(Message(forged.SerializeToString(), user_id="batch-C1"))

    assert isinstance(outcome, Dead)
    assert outcome.reason == "history-not-allowed"
    assert "batch-C1" in outcome.detail
    assert not shared.transactions  # not even its live item
    assert not shared.records  # the batch id is not claimed either
    [(_, answer)] = replies.sent
    assert answer.refused_reason == outcome.detail
    assert not answer.accepted


async def test_a_centre_batch_user_without_history_items_is_answered_as_before() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, may_migrate=False)

    outcome = await worker.handle(Message(batch("r-1").SerializeToString(), user_id="batch-C1"))

    assert outcome is None
    assert len(shared.transactions) == 1


async def test_a_trusted_user_sending_history_items_is_answered_item_by_item() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, may_migrate=True)

    outcome = await worker.handle(
        Message(with_history(batch("r-1")).SerializeToString(), user_id="migrator")
    )

    assert outcome is None
    [(_, answer)] = replies.sent
    assert [a.index for a in answer.accepted] == [0, 1]
    assert len(shared.transactions) == 2
