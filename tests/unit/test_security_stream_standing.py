"""A streaming call's credential is verified again while the call goes on, at most every
recheck_s: one that expired or whose key was retired ends the call UNAUTHENTICATED."""

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from sanad.errors import Unauthenticated
from sanad.security import policy
from sanad.security.admission import Admission
from sanad.security.identity import Identity, Role
from sanad.security.interceptor import SecurityInterceptor, _Guard, _Standing
from sanad.security.limits import RateLimiter, StreamCap

CENTRE = Identity("front-desk", Role.CENTRE, center_id="C1")


class Expiring:
    """Identifies the call's caller until `expired`, then refuses it as PyJWT's expiry does."""

    def __init__(self) -> None:
        self.expired = False
        self.asked = 0

    def identify(self, context: Any) -> Identity:
        self.asked += 1
        if self.expired:
            raise Unauthenticated("bad bearer token: ExpiredSignatureError")
        return CENTRE


def standing(authenticator: Expiring, recheck_s: float) -> _Standing:
    owner = SimpleNamespace(
        admission=SimpleNamespace(authenticator=authenticator), recheck_s=recheck_s
    )
    return _Standing(owner, context=object(), identity=CENTRE)  # type: ignore[arg-type]


def test_an_expired_token_ends_the_call_at_the_next_answer_after_the_interval() -> None:
    tokens = Expiring()
    call = standing(tokens, recheck_s=0)
    call.check()
    tokens.expired = True
    with pytest.raises(Unauthenticated, match="no longer holds: bad bearer token: ExpiredSig"):
        call.check()


def test_within_the_interval_answers_go_out_without_verifying_again() -> None:
    tokens = Expiring()
    call = standing(tokens, recheck_s=60)
    tokens.expired = True
    for _ in range(1000):
        call.check()
    assert tokens.asked == 0


class Caller:
    """The gRPC context of a plaintext call with no metadata."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def time_remaining(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def code(self) -> None:
        return None


async def test_a_client_stream_takes_no_item_once_its_token_expired_and_answers_those_taken() -> (
    None
):
    tokens = Expiring()
    admission = Admission(tokens, RateLimiter(0, 0), StreamCap(0))  # type: ignore[arg-type]
    owner = SecurityInterceptor(admission, "MOCIIP", recheck_s=0)
    method = policy.INTAKE + "SubmitTransactions"
    guard = _Guard(owner, method, policy.POLICY[method])
    taken: list[int] = []

    async def items() -> AsyncIterator[int]:
        for n in range(6):
            if n == 2:
                tokens.expired = True  # the token expires while the stream is open
            yield n

    async def submissions(requests: AsyncIterator[int], context: Any) -> AsyncIterator[str]:
        async for n in requests:
            taken.append(n)  # where intake would publish the submission
            yield f"answer {n}"

    answers: list[str] = []

    async def read_answers() -> None:
        async for answer in guard.streaming(submissions, streamed=True)(items(), Caller()):
            answers.append(answer)

    with pytest.raises(Unauthenticated, match="no longer holds: bad bearer token: Expired"):
        await read_answers()
    # Item 2 and later were never handed on; every item taken was answered.
    assert taken == [0, 1]
    assert answers == ["answer 0", "answer 1"]


async def test_an_idle_client_stream_ends_on_the_timer_and_an_item_in_hand_is_still_answered() -> (
    None
):
    tokens = Expiring()
    admission = Admission(tokens, RateLimiter(0, 0), StreamCap(0))  # type: ignore[arg-type]
    owner = SecurityInterceptor(admission, "MOCIIP", recheck_s=0.02)
    method = policy.INTAKE + "SubmitTransactions"
    guard = _Guard(owner, method, policy.POLICY[method])

    async def items() -> AsyncIterator[int]:
        yield 0
        await asyncio.Event().wait()  # the caller sends nothing more and keeps the stream
        yield 1

    async def submissions(requests: AsyncIterator[int], context: Any) -> AsyncIterator[str]:
        async for n in requests:
            tokens.expired = True  # while the item is in hand (a confirm awaited)
            await asyncio.sleep(0.1)
            yield f"answer {n}"

    answers: list[str] = []

    async def read_answers() -> None:
        async for answer in guard.streaming(submissions, streamed=True)(items(), Caller()):
            answers.append(answer)

    with pytest.raises(Unauthenticated, match="no longer holds: bad bearer token: Expired"):
        async with asyncio.timeout(5):
            await read_answers()
    assert answers == ["answer 0"]
