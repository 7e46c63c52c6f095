"""sanadctl dead-letters against an in-memory broker: list holds only the letters it shows, drop
removes exactly the letters chosen, and a refused replay keeps its letter without handing it
back to the broker unacknowledged (each return counts towards a quorum queue's delivery limit)."""

import gc
import json
import weakref
from typing import Any

import pytest

from sanad.amqp import dead_letter_pass
from sanad.amqp.dead_letters import DeadLetter
from sanad.cli.__main__ import main
from tests.unit.dead_letter_fakes import REFUSE, FakeBroker, install

WORK, DEAD = "sanad.ingest", "sanad.ingest.dead"


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker(queues={WORK: [], DEAD: []})
    install(monkeypatch, fake)
    return fake


def sanadctl(*args: str) -> int:
    return main(["dead-letters", *args], environ={})


def test_listing_more_letters_than_the_limit_holds_only_those_it_shows(
    broker: FakeBroker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reasons = ["unknown-type", "invalid", "undecodable"]
    broker.letters(DEAD, *[(reasons[n % 3], f"m-{n}") for n in range(300)])
    made: list[weakref.ref[DeadLetter]] = []
    alive_at_the_end: list[int] = []
    read = dead_letter_pass.letter_of

    def letter_of(position: int, message: Any, work_queue: str) -> DeadLetter:
        letter = read(position, message, work_queue)
        made.append(weakref.ref(letter))
        if position == 299:
            gc.collect()
            alive_at_the_end.append(sum(ref() is not None for ref in made))
        return letter

    monkeypatch.setattr(dead_letter_pass, "letter_of", letter_of)

    assert sanadctl("list", "--limit", "2") == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dead letters of ingest (300, the oldest 2 shown):"
    assert out[1].split()[:4] == ["0", "unknown-type", "sanad.v1.TransactionSubmitted", "m-0"]
    assert out[2].split()[:2] == ["1", "invalid"]
    assert out[3:] == ["reasons: invalid 100, undecodable 100, unknown-type 100"]
    # The two shown, the one the pass moved last and the one being read: none of the others.
    assert alive_at_the_end == [4]
    assert broker.ids(DEAD) == [f"m-{n}" for n in range(300)]


def test_listing_as_json_prints_the_letters_shown_then_the_total_and_counts_by_reason(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(DEAD, ("invalid", "m-0"), ("unknown-type", "m-1"), ("invalid", "m-2"))

    assert main(["--json", "dead-letters", "list", "--limit", "1"], environ={}) == 0

    # Only the letters before: a script could not tell that two more wait.
    [letter, counts] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert letter["message_id"] == "m-0"
    assert counts == {"total": 3, "shown": 1, "reasons": {"invalid": 2, "unknown-type": 1}}


def test_listing_an_empty_queue_as_json_prints_its_zero(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--json", "dead-letters", "list"], environ={}) == 0

    # Nothing at all before.
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {"total": 0, "shown": 0, "reasons": {}}


def test_drop_without_a_reason_or_an_id_is_refused_and_takes_no_letter(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(DEAD, ("invalid", "m-0"))

    assert sanadctl("drop") == 2

    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: dead-letters drop needs --reason or --id: it never drops every letter"
        " (see `sanadctl dead-letters list` for the reasons and ids)"
    ]
    assert broker.ids(DEAD) == ["m-0"]
    assert broker.acked == []


@pytest.mark.parametrize(
    ("action", "flag"),
    # replay --reason "" passed before: it replayed nothing and moved every letter to the back.
    [("drop", "--reason"), ("drop", "--id"), ("replay", "--reason")],
)
def test_an_empty_reason_or_id_to_match_is_a_usage_error(
    broker: FakeBroker, action: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(DEAD, ("invalid", "m-0"), ("unknown-type", "m-1"))

    with pytest.raises(SystemExit) as exit_info:
        sanadctl(action, flag, "")

    assert exit_info.value.code == 2
    assert f"argument {flag}: must not be empty" in capsys.readouterr().err
    assert broker.ids(DEAD) == ["m-0", "m-1"]
    assert broker.acked == []


def test_drop_has_the_queue_and_broker_options_of_list_and_replay(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.queues.update({"sanad.batch": [], "sanad.batch.dead": []})
    broker.letters("sanad.batch.dead", ("not-allowed", "b-0"))
    url = "amqp://guest:guest@127.0.0.1:5672/"

    code = sanadctl("drop", "--queue", "batch", "--amqp-url", url, "--reason", "not-allowed")

    assert code == 0, capsys.readouterr().err
    assert broker.ids("sanad.batch.dead") == []


def test_drop_removes_exactly_the_letters_of_its_reasons_and_keeps_the_others_in_order(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(
        DEAD,
        ("invalid", "m-0"),
        ("unknown-type", "m-1"),
        ("undecodable", "m-2"),
        ("invalid", "m-3"),
        ("unknown-type", "m-4"),
    )

    code = main(
        ["--json", "dead-letters", "drop", "--reason", "invalid", "--reason", "undecodable"],
        environ={},
    )

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "dropped": 3,
        "kept": 2,
        "reasons": {"invalid": 2, "undecodable": 1},
    }
    assert broker.ids(DEAD) == ["m-1", "m-4"]
    assert sorted(broker.acked) == ["m-0", "m-1", "m-2", "m-3", "m-4"]  # kept ones once copied
    assert broker.queues[WORK] == []


def test_drop_by_reason_and_id_drops_only_letters_matching_both(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(DEAD, ("invalid", "m-0"), ("invalid", "m-1"), ("unknown-type", "m-2"))

    assert sanadctl("drop", "--reason", "invalid", "--id", "m-1", "--id", "m-2") == 0

    assert capsys.readouterr().out.splitlines() == [
        "dropped: 1",
        "kept:    2",
        "reasons: invalid 1",
    ]
    assert broker.ids(DEAD) == ["m-0", "m-2"]


def test_a_refused_replay_puts_its_letter_at_the_back_and_never_hands_it_back(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(DEAD, ("unknown-type", "m-0"), ("unknown-type", "m-1"), ("invalid", "m-2"))
    broker.publishes[WORK] = REFUSE

    for run in range(25):  # more than RabbitMQ 4.x's default delivery limit of 20
        assert sanadctl("replay") == 1, run

    assert sorted(broker.ids(DEAD)) == ["m-0", "m-1", "m-2"]
    assert [stored.deliveries for stored in broker.queues[DEAD]] == [0, 0, 0]
    assert broker.nacked == []
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (
        "error: the pass over the dead letters of ingest stopped after 0 letters (0 replayed,"
        " 0 kept, 0 dropped): the broker refused a letter: its queue is full (its workers are"
        " behind) or has no leader; the letter it failed on (m-0, unknown-type) is kept, at the"
        " back of the queue"
    )


def test_a_replay_stopped_after_some_letters_says_how_many_were_replayed(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(DEAD, ("invalid", "m-0"), ("unknown-type", "m-1"), ("unknown-type", "m-2"))
    broker.max_length[WORK] = 1  # m-1 fills the work queue

    assert sanadctl("replay", "--reason", "unknown-type") == 1

    assert capsys.readouterr().err.splitlines() == [
        "error: the pass over the dead letters of ingest stopped after 2 letters (1 replayed,"
        " 1 kept, 0 dropped): the broker refused a letter: its queue is full (its workers are"
        " behind) or has no leader; the letter it failed on (m-2, unknown-type) is kept, at the"
        " back of the queue"
    ]
    assert broker.ids(WORK) == ["m-1"]
    assert broker.ids(DEAD) == ["m-0", "m-2"]


def test_a_refused_replay_whose_letter_cannot_be_put_back_hands_it_back_and_stops(
    broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    broker.letters(DEAD, ("unknown-type", "m-0"), ("invalid", "m-1"))
    broker.publishes.update({WORK: REFUSE, DEAD: REFUSE})

    assert sanadctl("replay") == 1

    assert broker.ids(DEAD) == ["m-0", "m-1"]
    assert broker.nacked == ["m-0"]
    assert capsys.readouterr().err.endswith(
        "; the letter it failed on (m-0, unknown-type) is kept, in the queue\n"
    )


@pytest.mark.parametrize(
    "url", ["notaurl", "amqp://guest:guest@127.0.0.1:notaport/", "amqp://[::1"]
)
@pytest.mark.parametrize("action", [["list"], ["replay"], ["drop", "--reason", "invalid"]])
def test_a_url_that_names_no_broker_is_one_line_and_exit_2(
    action: list[str], url: str, broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sanadctl(*action, "--amqp-url", url) == 2
    err = capsys.readouterr().err
    assert err == "error: the RabbitMQ URL is not an amqp:// or amqps:// URL with a host\n"


@pytest.mark.parametrize("action", ["list", "replay"])
def test_a_negative_limit_is_a_usage_error(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sanadctl(action, "--limit", "-1")

    assert exit_info.value.code == 2
    assert "argument --limit: must be 0 or more" in capsys.readouterr().err
