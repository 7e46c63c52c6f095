"""The health reporter says which check failed and why, once per change, without the error's
message (a URL in it may carry credentials)."""

import logging

import pytest
from grpc_health.v1 import health

from sanad.rpc.health import HealthReporter


class Flaky:
    """A check answering from a script: True, False or an exception to raise."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)

    async def __call__(self) -> bool:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return bool(answer)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "sanad.health"]


async def test_each_change_of_a_check_is_logged_once_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = ConnectionError("amqp://sanad:hunter2@broker:5672/ refused")
    mongo = Flaky(False, True, True, secret, secret, True)
    reporter = HealthReporter(health.aio.HealthServicer(), [], {"mongodb": mongo})
    caplog.set_level(logging.INFO, logger="sanad.health")

    for _ in range(6):
        await reporter.check_once()

    assert lines(caplog) == [
        ("INFO", "health check mongodb fails: answered not ready"),  # starting: never passed
        ("INFO", "health check mongodb passes"),
        ("INFO", "health SERVING"),
        ("WARNING", "health check mongodb fails: raised ConnectionError"),
        ("INFO", "health NOT_SERVING (mongodb)"),
        ("INFO", "health check mongodb passes again"),
        ("INFO", "health SERVING"),
    ]
    assert "hunter2" not in caplog.text


async def test_shutting_down_says_so(caplog: pytest.LogCaptureFixture) -> None:
    reporter = HealthReporter(health.aio.HealthServicer(), [], {"mongodb": Flaky(True)})
    caplog.set_level(logging.INFO, logger="sanad.health")
    await reporter.check_once()

    await reporter.shutdown()

    assert lines(caplog)[-1] == ("INFO", "health NOT_SERVING (stopping)")
