"""Intake's notes of changes about to be accepted, in the MongoDB-wire server: read back oldest
first past a cutoff, removed once their change (or a later one) is seen published, and kept
when a newer change wrote its note after the sweep read the old one (left_unsent.py)."""

import asyncio
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient

from sanad.domain.clock import utcnow
from services.intake.request_store import RequestStore

pytestmark = pytest.mark.integration


async def test_notes_are_found_past_their_cutoff_and_removed_as_their_changes_are_sent(
    mongo_url: str, database_name: str
) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        store = RequestStore(client[database_name])
        await store.note_unsent("status T1", 1, 5.0)
        await asyncio.sleep(0.01)
        await store.note_unsent("rating T2", 0, 5.0)
        await asyncio.sleep(0.01)
        cutoff = utcnow()
        await store.note_unsent("status T3", 4, 5.0)

        left = await store.left_unsent(cutoff, 10)
        assert [key for key, _ in left] == ["status T1", "rating T2"]
        assert await store.left_unsent(cutoff, 1) == left[:1]

        # A change of T3 accepted after the sweep read it: its note stays.
        await store.note_sent("status T3", 3, 5.0)
        assert [key for key, _ in await store.left_unsent(utcnow(), 10)][-1] == "status T3"
        # Seen published: change 4 of T3 (and so any before it).
        await store.note_sent("status T3", 4, 5.0)
        # T1's note rewritten by its change 2 after the sweep read it: forgetting the note as
        # read leaves the new one.
        await store.note_unsent("status T1", 2, 5.0)
        await store.forget_unsent("status T1", left[0][1])
        await store.forget_unsent("rating T2", left[1][1])
        later = utcnow() + timedelta(seconds=1)
        assert [key for key, _ in await store.left_unsent(later, 10)] == ["status T1"]
        # The change's confirm removes its note with the record's note of it.
        await store.confirm_change("T1", 2, 5.0)
        assert await store.left_unsent(later, 10) == []
    finally:
        await client.close()


async def test_a_late_note_of_an_earlier_change_keeps_the_later_ones_number(
    mongo_url: str, database_name: str
) -> None:
    # A slow call noted change 2 after another intake noted change 3; the confirm of 2 then
    # cleared the note while 3 was still unsent (intake hunt).
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        store = RequestStore(client[database_name])
        await store.note_unsent("status T9", 3, 5.0)
        await store.note_unsent("status T9", 2, 5.0)
        await store.note_sent("status T9", 2, 5.0)
        left = await store.left_unsent(utcnow() + timedelta(minutes=5), 10)
        assert "status T9" in [key for key, _ in left]
    finally:
        await client.close()
