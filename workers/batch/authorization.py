"""Who may submit a batch for which centre, and who may send migrated history, from the
broker-validated AMQP user_id.

The submission rule lives in sanad.security.batch_users (a user `batch-<centre id>` submits only
for that centre; SANAD_BATCH_TRUSTED_USERS for any centre; everyone in the dev auth mode). This
module binds it to the worker's settings, and adds the rule for history items: those carry
statuses, actors, ratings and times nobody witnessed, and count in the rollups the award and
reports read, so only the trusted users (migrations, an agency's bulk loader) may send them;
in the dev auth mode everyone may, as everyone may submit for every centre there.
"""

from collections.abc import Callable

from sanad.security import batch_users
from sanad.settings import AuthMode, CommonSettings

Authorize = Callable[[str, str], bool]
MayMigrate = Callable[[str], bool]


def authorizer(settings: CommonSettings) -> Authorize:
    """may_submit(user_id, center_id) under these settings."""
    trusted = settings.batch_trusted_user_names

    def may_submit(user_id: str, center_id: str) -> bool:
        return batch_users.may_submit(user_id, center_id, settings.auth_mode, trusted)

    return may_submit


def migration_authorizer(settings: CommonSettings) -> MayMigrate:
    """may_migrate(user_id): whether the user may send history_items under these settings."""
    trusted = settings.batch_trusted_user_names

    def may_migrate(user_id: str) -> bool:
        return (bool(user_id) and user_id in trusted) or settings.auth_mode is AuthMode.DEV

    return may_migrate
