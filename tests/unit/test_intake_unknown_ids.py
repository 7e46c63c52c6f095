"""An id that names nothing is answered NOT_FOUND repeating at most 128 of its characters."""

from typing import Any

import pytest

from sanad.deadline import Deadline
from sanad.errors import NotFound
from sanad.security.identity import DEV_ADMIN
from services.intake.reading import stored


class NothingStored:
    async def get_transaction(self, transaction_id: str, timeout_s: float | None = None) -> Any:
        return None


async def test_an_unknown_transaction_id_is_repeated_at_most_128_characters() -> None:
    with pytest.raises(NotFound) as caught:
        await stored(NothingStored(), "T" * 100_000, Deadline(None), DEV_ADMIN)
    message = str(caught.value)
    assert len(message) < 200
    assert "(100000 characters)" in message


async def test_a_short_unknown_id_is_repeated_whole() -> None:
    with pytest.raises(NotFound, match=r"^transaction 'T1' not found$"):
        await stored(NothingStored(), "T1", Deadline(None), DEV_ADMIN)
