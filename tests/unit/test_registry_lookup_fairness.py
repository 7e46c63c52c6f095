"""The registry questions a process asks for its callers' refusals (sanad/registry_lookup.py)
are shared fairly: one caller sending refused submissions as fast as its rate allows gets its
own share of the process's budget, and leaves the rest to everyone else."""

from sanad.registry_lookup import (
    LOOKUPS_PER_CALLER_S,
    LOOKUPS_PER_S,
    RegistryLookup,
    Unanswered,
)
from tests.unit.test_intake_registry_lookup import FakeRegistry

NOISY = "centre:desk-9@C9"
QUIET = "centre:desk-1@C1"


async def test_a_noisy_caller_cannot_spend_the_whole_process_budget() -> None:
    # Before, the process's 40 a second were one bucket: 40 refusals of one caller, each for
    # a centre of its own, spent it, and every other caller's refusal stood unasked.
    registry = FakeRegistry()
    lookup = RegistryLookup(registry, clock=lambda: 0.0)
    noisy = [await lookup.center(f"N{n}", 1.0, NOISY) for n in range(LOOKUPS_PER_S)]
    asked = [answer for answer in noisy if not isinstance(answer, Unanswered)]
    assert len(asked) < LOOKUPS_PER_S
    quiet = await lookup.current("C1", "S", 1.0, QUIET)
    assert quiet is not None
    assert quiet[0] is not None
    assert quiet[0].id == "C1"


async def test_each_caller_is_held_to_its_share_while_the_process_has_budget_left() -> None:
    registry = FakeRegistry()
    lookup = RegistryLookup(registry, clock=lambda: 0.0)
    share = [await lookup.center(f"N{n}", 1.0, NOISY) for n in range(2 * LOOKUPS_PER_S)]
    asked = [answer for answer in share if not isinstance(answer, Unanswered)]
    assert len(asked) == LOOKUPS_PER_CALLER_S
    assert registry.calls == len(asked)


async def test_the_process_budget_still_bounds_all_callers_together() -> None:
    registry = FakeRegistry()
    lookup = RegistryLookup(registry, clock=lambda: 0.0)
    for caller in range(2 * LOOKUPS_PER_S):
        for n in range(LOOKUPS_PER_S):
            await lookup.center(f"K{caller}-{n}", 1.0, f"centre:desk@C{caller}")
    assert registry.calls == LOOKUPS_PER_S


async def test_the_caller_share_refills_with_time() -> None:
    now = [0.0]
    registry = FakeRegistry()
    lookup = RegistryLookup(registry, clock=lambda: now[0])
    while not isinstance(await lookup.center(f"N{registry.calls}", 1.0, NOISY), Unanswered):
        pass
    now[0] += 1.0
    assert not isinstance(await lookup.center("again", 1.0, NOISY), Unanswered)
