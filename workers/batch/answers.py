"""A batch's answer: built from its verdict, saved once, and kept true to what is stored.

Two workers can handle one batch id at once (the submitter sent it again while the first
was still working). Each stores what it accepts, by the same derived transaction ids, and
only the first answer is saved. The other worker answers with the saved one, after moving to
accepted every item that answer refuses but whose transaction is stored (its own snapshot
of the registry accepted it); it saves that correction too, so a later resend gets it.
"""

from collections.abc import Sequence
from typing import Protocol

from sanad.amqp.verdicts import TransientError
from sanad.v1 import common_pb2, events_pb2
from workers.batch.domain import Context, Verdict, item_id

# Rounds of read, correct and compare-and-set against other workers correcting the same answer.
SETTLE_ROUNDS = 5


class SavedAnswers(Protocol):
    """What settle needs of BatchStore."""

    async def stored_ids(self, ids: Sequence[str]) -> set[str]: ...

    async def replace_result(
        self, key: str, old: bytes, new: bytes, accepted: int, rejected: int
    ) -> bool: ...

    async def saved_result(self, key: str) -> bytes: ...


def result_of(batch_id: str, verdict: Verdict) -> events_pb2.BatchResult:
    """The BatchResult of a judged batch, items in index order."""
    return events_pb2.BatchResult(
        batch_id=batch_id,
        accepted=[
            events_pb2.BatchItemAccepted(index=index, transaction_id=transaction_id)
            for index, transaction_id in verdict.transaction_ids
        ],
        rejected=[
            events_pb2.BatchItemRejected(
                index=index,
                violations=[
                    common_pb2.FieldViolation(field=v.field, description=v.description)
                    for v in found
                ],
            )
            for index, found in verdict.rejected
        ],
    )


async def settle(
    store: SavedAnswers, batch: events_pb2.BatchSubmission, context: Context, saved: bytes
) -> events_pb2.BatchResult:
    """The saved answer, with the items it refuses but whose transactions are stored moved to
    accepted; a correction is saved in place of the answer it corrects (compare and set)."""
    for _ in range(SETTLE_ROUNDS):
        answer = events_pb2.BatchResult.FromString(saved)
        ids = {}
        for item in answer.rejected:
            if (found := item_id(batch, context, item.index)) is not None:
                ids[item.index] = found
        stored = await store.stored_ids(list(ids.values())) if ids else set()
        moved = {index: tx for index, tx in ids.items() if tx in stored}
        if not moved:
            return answer
        settled = with_accepted(answer, moved)
        body = settled.SerializeToString()
        accepted, rejected = len(settled.accepted), len(settled.rejected)
        if await store.replace_result(context.batch_key, saved, body, accepted, rejected):
            return settled
        saved = await store.saved_result(context.batch_key)
    raise TransientError(f"the answer of batch {batch.batch_id!r} keeps changing")


def with_accepted(answer: events_pb2.BatchResult, moved: dict[int, str]) -> events_pb2.BatchResult:
    """The answer with these refused items (index -> transaction id) accepted instead."""
    accepted = sorted([*((a.index, a.transaction_id) for a in answer.accepted), *moved.items()])
    return events_pb2.BatchResult(
        batch_id=answer.batch_id,
        accepted=[
            events_pb2.BatchItemAccepted(index=index, transaction_id=tx) for index, tx in accepted
        ],
        rejected=[item for item in answer.rejected if item.index not in moved],
    )
