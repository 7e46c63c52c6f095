"""A published status change is noted confirmed on its record first and its note cleared after:
when time runs out between them, the note still waits for the sweep, which finds the change
confirmed and clears it. Run together, the note could be cleared while the record still said
unconfirmed, and only another call on the transaction sent the change again."""

import asyncio
from typing import Any

import pytest

from sanad.errors import Unavailable
from services.intake.request_store import RequestStore


class Collection:
    """update_one that answers after `delay_s`, recording what it was asked."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.updates: list[dict[str, Any]] = []

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], **_: Any) -> None:
        await asyncio.sleep(self.delay_s)
        self.updates.append(query)


async def test_a_note_is_cleared_only_after_its_change_is_noted_confirmed() -> None:
    requests, unsent = Collection(delay_s=0.5), Collection(delay_s=0.0)
    store = RequestStore(
        {"intake_requests": requests, "intake_unsent": unsent, "audit_log": None}  # type: ignore[arg-type]
    )

    with pytest.raises(Unavailable):  # the caller's time runs out on the record's update
        await store.confirm_change("T1", 3, timeout_s=0.1)

    assert unsent.updates == []  # the note still waits: the sweep takes care of it

    requests.delay_s = 0.0
    await store.confirm_change("T1", 3, timeout_s=1.0)
    assert [q["_id"] for q in requests.updates] == ["status\x1fT1"]
    assert [q["_id"] for q in unsent.updates] == ["status T1"]
