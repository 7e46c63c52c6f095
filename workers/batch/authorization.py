"""Who may submit a batch for which centre, from the broker-validated AMQP user_id.

The rule itself lives in sanad.security.batch_users (a user `batch-<centre id>` submits only for
that centre; SANAD_BATCH_TRUSTED_USERS for any centre; everyone in the dev auth mode). This module
binds it to the worker's settings.
"""

from collections.abc import Callable

from sanad.security import batch_users
from sanad.settings import CommonSettings

Authorize = Callable[[str, str], bool]


def authorizer(settings: CommonSettings) -> Authorize:
    """may_submit(user_id, center_id) under these settings."""
    trusted = [user.strip() for user in settings.batch_trusted_users.split(",") if user.strip()]

    def may_submit(user_id: str, center_id: str) -> bool:
        return batch_users.may_submit(user_id, center_id, settings.auth_mode, trusted)

    return may_submit
