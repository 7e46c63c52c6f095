"""Which RabbitMQ user may submit a batch for which centre (issue #7 item 3).

RabbitMQ refuses a published message whose `user_id` property differs from the user of the
connection, so `user_id` on a delivered message is broker-validated. A batch submitter connects
as `batch-<centre id>` and may submit only for that centre; users named in SANAD_BATCH_TRUSTED_USERS
(migrations, an agency's bulk loader) may submit for any centre. In the dev auth mode every user
may submit for every centre, as before issue #7. A message without user_id is refused otherwise.
"""

from collections.abc import Iterable

from sanad.settings import AuthMode, amqp_user

BATCH_USER_PREFIX = "batch-"


def broker_user(amqp_url: str) -> str:
    """The RabbitMQ user an AMQP URL logs in as (guest when it names none, as RabbitMQ assumes);
    a submitter sets it as `user_id` on every message, and the broker checks it."""
    return amqp_user(amqp_url)


def batch_user(center_id: str) -> str:
    """The RabbitMQ user name of a centre's batch submitter."""
    return BATCH_USER_PREFIX + center_id


def may_submit(
    user_id: str, center_id: str, mode: AuthMode, trusted_users: Iterable[str] = ()
) -> bool:
    """True when the broker-validated user may submit transactions for the centre."""
    if user_id and user_id in set(trusted_users):
        return True
    if center_id and user_id == batch_user(center_id):
        return True
    return mode is AuthMode.DEV
