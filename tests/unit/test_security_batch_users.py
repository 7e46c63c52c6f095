"""A RabbitMQ user batch-<centre> submits for that centre only once authentication is required."""

from sanad.security.batch_users import batch_user, broker_user, may_submit
from sanad.settings import AuthMode

REQUIRED = AuthMode.REQUIRED


def test_a_centre_batch_user_submits_for_its_own_centre() -> None:
    assert may_submit(batch_user("c-1"), "c-1", REQUIRED)


def test_a_centre_batch_user_may_not_submit_for_another_centre() -> None:
    assert not may_submit(batch_user("c-1"), "c-2", REQUIRED)


def test_a_message_without_user_id_or_centre_is_refused() -> None:
    assert not may_submit("", "c-1", REQUIRED)
    assert not may_submit("batch-", "", REQUIRED)
    assert not may_submit("guest", "c-1", REQUIRED)


def test_a_trusted_user_submits_for_any_centre() -> None:
    assert may_submit("migration", "c-9", REQUIRED, ["migration", "moh-loader"])


def test_the_dev_mode_keeps_every_user_allowed() -> None:
    assert may_submit("guest", "c-1", AuthMode.DEV)


def test_the_broker_user_is_the_one_the_amqp_url_logs_in_as() -> None:
    assert broker_user("amqps://batch-c-1:pw@mq:5671/sanad") == "batch-c-1"
    assert broker_user("amqp://batch%2Dc-2:pw@mq/") == "batch-c-2"
    assert broker_user("amqp://127.0.0.1/") == "guest"
