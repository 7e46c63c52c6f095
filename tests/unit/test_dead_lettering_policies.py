"""The deploy policies give every queue that dead-letters the same at-least-once strategy the code
declares, so queues declared before the code did still get it; one policy applies per queue. They
bound the work queues, whose overflow refuses new messages past the bound, and an alert warns
before a queue reaches it."""

import json
import re
from pathlib import Path

import pytest
import yaml

from sanad.amqp.topology import AT_LEAST_ONCE, Topology

ROOT = Path(__file__).resolve().parents[2]
POLICIES = json.loads((ROOT / "deploy" / "compose" / "rabbitmq" / "definitions.json").read_text())[
    "policies"
]
ALERTS = ROOT / "deploy" / "prometheus" / "rules" / "sanad-alerts.yml"
TOPOLOGY = Topology("sanad")
DEAD_LETTERING = [
    *TOPOLOGY.work_queues(),
    *(TOPOLOGY.retry_queue(work) for work in TOPOLOGY.work_queues()),
]


def applying(queue: str) -> list[dict[str, object]]:
    """The policies whose pattern matches a queue (RabbitMQ searches with the regex)."""
    return [p for p in POLICIES if p["apply-to"] == "queues" and re.search(p["pattern"], queue)]


@pytest.mark.parametrize("queue", DEAD_LETTERING)
def test_each_dead_lettering_queue_gets_one_policy_that_dead_letters_at_least_once(
    queue: str,
) -> None:
    [policy] = applying(queue)
    definition = policy["definition"]
    assert isinstance(definition, dict)

    for argument, value in AT_LEAST_ONCE.items():
        assert definition[argument.removeprefix("x-")] == value


def test_dead_queues_get_no_dead_lettering_policy() -> None:
    for work in TOPOLOGY.work_queues():
        assert applying(TOPOLOGY.dead_queue(work)) == []


def test_work_and_retry_queues_are_declared_to_dead_letter_at_least_once() -> None:
    for work in TOPOLOGY.work_queues():
        for arguments in (
            TOPOLOGY.work_queue_arguments(work),
            TOPOLOGY.retry_queue_arguments(work),
        ):
            assert arguments.items() >= AT_LEAST_ONCE.items()
            assert arguments["x-dead-letter-routing-key"] == work


@pytest.mark.parametrize("queue", list(TOPOLOGY.work_queues()))
def test_each_work_queue_is_bounded_and_refuses_new_messages_past_its_bound(queue: str) -> None:
    [policy] = applying(queue)
    definition = policy["definition"]
    assert isinstance(definition, dict)

    assert definition["overflow"] == "reject-publish"
    # Room for millions of submissions, within the broker's 20 GiB volume beside the others.
    assert 1 << 30 <= definition["max-length-bytes"] <= 4 << 30


def test_the_near_bound_alert_warns_at_four_fifths_of_the_policys_bound() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    [rule] = [r for g in groups for r in g["rules"] if r["alert"] == "SanadWorkQueueNearItsBound"]
    [policy] = [p for p in POLICIES if p["name"] == "sanad-work-queues"]
    bound = policy["definition"]["max-length-bytes"]

    assert rule["expr"].endswith(f"> 0.8 * {bound}")
    assert f"near its {bound / (1 << 30):g} GiB bound" in rule["annotations"]["summary"]
