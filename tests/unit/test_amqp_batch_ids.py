"""The batch queue's rule for a batch_id is the batch worker's, so sanadctl refuses before
sending what the worker would refuse after."""

import pytest

from sanad.amqp.batches import MAX_MESSAGE_ID_BYTES, batch_id_problem
from sanad.v1 import events_pb2
from workers.batch.refusals import _invalid


@pytest.mark.parametrize(
    "batch_id",
    ["", "b/0", "b" * 200, "b" * 201, "ع" * 127, "a\x1fb", "a\u200bb", "a\tb", "a b/3"],
)
def test_a_batch_id_is_refused_as_the_batch_worker_refuses_it(batch_id: str) -> None:
    submission = events_pb2.BatchSubmission(batch_id=batch_id, center_id="C1")

    expected = _invalid(submission)
    if expected is None and len(batch_id.encode()) > MAX_MESSAGE_ID_BYTES:
        expected = "batch_id must be at most 255 bytes in UTF-8 (its message id)"

    assert batch_id_problem(batch_id) == expected
