"""Why a handler was cancelled, as its metrics, log line and audit event name it: its deadline
passed, or its caller went away."""

import grpc
import pytest

from sanad.rpc.interceptors import cancelled_code


class Call:
    def __init__(self, left: float | None) -> None:
        self.left = left

    def time_remaining(self) -> float | None:
        return self.left


@pytest.mark.parametrize(
    ("left", "code"),
    [
        (0.0, grpc.StatusCode.DEADLINE_EXCEEDED),
        # The caller's deadline passed first: this server's counts from the request's arrival.
        (0.004, grpc.StatusCode.DEADLINE_EXCEEDED),
        (0.5, grpc.StatusCode.CANCELLED),
        (None, grpc.StatusCode.CANCELLED),
    ],
)
def test_a_cancel_at_the_deadline_is_the_deadline_and_any_other_the_callers(
    left: float | None, code: grpc.StatusCode
) -> None:
    assert cancelled_code(Call(left)) is code  # type: ignore[arg-type]
