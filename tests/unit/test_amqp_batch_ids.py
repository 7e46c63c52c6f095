"""The batch queue's rule for a batch_id is the batch worker's, so sanadctl refuses before
sending what the worker would refuse after."""

import pytest

from sanad.amqp.batches import batch_id_problem, message_id_problem
from sanad.v1 import events_pb2
from workers.batch.refusals import _invalid


@pytest.mark.parametrize(
    "batch_id",
    ["", " ", "b/0", "b" * 200, "b" * 201, "ع" * 127, "a\x1fb", "a\u200bb", "a\tb", "a b/3"],
)
def test_a_batch_id_is_refused_as_the_batch_worker_refuses_it(batch_id: str) -> None:
    submission = events_pb2.BatchSubmission(batch_id=batch_id, center_id="C1")
    assert batch_id_problem(batch_id) == _invalid(submission)


@pytest.mark.parametrize(("batch_id", "fits"), [("ع" * 127, True), ("ع" * 128, False)])
def test_a_batch_id_beyond_an_amqp_message_id_cannot_be_published(
    batch_id: str, fits: bool
) -> None:
    assert batch_id_problem(batch_id) is None  # the worker would take it
    assert (message_id_problem(batch_id) is None) is fits


def test_a_blank_batch_id_is_refused() -> None:
    # It was kept and answered, and named nothing a submitter could tell apart (fuzz helper).
    assert batch_id_problem("   ") == "batch_id must show something: it is blank"
