"""The batch worker trusts the broker-validated user_id: a centre's batch user submits for it."""

from sanad.settings import AuthMode, CommonSettings
from workers.batch.authorization import authorizer


def test_in_required_mode_a_centre_batch_user_submits_only_for_its_centre() -> None:
    may_submit = authorizer(
        CommonSettings(auth_mode=AuthMode.REQUIRED, batch_trusted_users="migrator, ")
    )
    assert may_submit("batch-C1", "C1")
    assert not may_submit("batch-C1", "C2")
    assert not may_submit("", "C1")
    assert may_submit("migrator", "C2")


def test_in_dev_mode_every_user_may_submit() -> None:
    may_submit = authorizer(CommonSettings(auth_mode=AuthMode.DEV))
    assert may_submit("anyone", "C1")
