"""A registry question that refusals share runs under its own time over a real channel: a first
asker with a deadline too short for any answer fails no later asker (sanad/registry_lookup.py),
and an asker that cancels does not cancel the call for the others."""

import asyncio

import pytest

from sanad.registry_lookup import RegistryLookup, Unanswered
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    registry_fixture,
)

pytestmark = pytest.mark.integration


async def test_a_hurried_first_asker_leaves_the_shared_question_to_the_others(
    registry: Registry,
) -> None:
    center = await registry.register()
    lookup = RegistryLookup(registry.stub)
    hurried = asyncio.create_task(lookup.center(center.id, 0.0005, "centre:hurried@X"))
    cancelled = asyncio.create_task(lookup.center(center.id, 5.0, "centre:gone@X"))
    patient = asyncio.create_task(lookup.center(center.id, 5.0, "centre:patient@X"))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert isinstance(await hurried, Unanswered)
    answer = await patient
    assert getattr(answer, "id", None) == center.id
