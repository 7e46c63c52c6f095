"""What one batch item may carry, and the fingerprint of a batch's content.

No I/O here. The bounds keep every stored document, and every answer, far below MongoDB's
16 MiB document limit: one item the worker cannot store must be refused by field, never
fail the batch it came in (a failed batch is dead-lettered without an answer).
"""

import hashlib
import hmac

from sanad.domain import codes
from sanad.domain.characters import text_violations
from sanad.domain.money import MAX_FEE_BAISA
from sanad.domain.submissions import ServiceView, Submission
from sanad.errors import Violation
from sanad.v1 import events_pb2, intake_pb2

# A migrated history: a few steps in practice (in progress, awaiting documents, completed).
MAX_HISTORY_STEPS = 50
# As intake's status notes (services.intake.tracking).
MAX_NOTE_LENGTH = 1000
MAX_ACTOR_LENGTH = 128
MAX_HISTORIC_FEE_BAISA = MAX_FEE_BAISA


def fingerprint(batch: events_pb2.BatchSubmission, secret: bytes) -> str:
    """Identifies a batch's content (its centre and items, in order), so a batch id resent
    with other content is caught rather than answered with the earlier batch's answer.

    Keyed (HMAC under the civil-ID secret, DESIGN §6), as intake's request fingerprint: the
    items carry clear civil numbers, which a plain hash stored beside the batch would let
    anyone who reads the database confirm by trying candidates. The parsed message is
    serialized again, so the same content sent by another client library compares equal.
    """
    content = batch.SerializeToString(deterministic=True)
    return hmac.new(secret, content, hashlib.sha256).hexdigest()


def overlong_codes(submission: Submission) -> list[Violation]:
    """The item's centre id or service code when longer than any the registry gives out."""
    return codes.overlong_codes(
        {"center_id": submission.center_id, "service_code": submission.service_code}
    )


def history_bounds(item: events_pb2.HistoricalTransaction) -> list[Violation]:
    """Too many history steps, or a step's actor or note too long or holding a control
    character, line separator or reordering control (as intake's notes: shown as they are).

    Only the first step at fault is named, as apply_history names the first step it cannot
    follow: naming every step's gave up to 200 violations an item, and a migration at its
    limits, 2.2 MB of steps whose actor and note each held a control character, an answer of
    28.7 MB that neither MongoDB (16 MB documents) nor the broker takes; its good items were
    stored and the batch was dead-lettered `handler-failed`, never answered."""
    if len(item.history) > MAX_HISTORY_STEPS:
        return [Violation("history", f"must have at most {MAX_HISTORY_STEPS} steps")]
    for position, step in enumerate(item.history):
        if found := _step_bounds(position, step):
            return found
    return []


def _step_bounds(position: int, step: intake_pb2.StatusChange) -> list[Violation]:
    """What is wrong with one step's actor and note."""
    found = []
    if len(step.actor) > MAX_ACTOR_LENGTH:
        found.append(
            Violation(
                f"history[{position}].actor", f"must be at most {MAX_ACTOR_LENGTH} characters"
            )
        )
    if len(step.note) > MAX_NOTE_LENGTH:
        found.append(
            Violation(f"history[{position}].note", f"must be at most {MAX_NOTE_LENGTH} characters")
        )
    found += text_violations(
        {f"history[{position}].actor": step.actor, f"history[{position}].note": step.note}
    )
    return found


def historic_fee(submission: Submission, service: ServiceView | None) -> list[Violation]:
    """A migrated item's fee: what was charged then, so not today's catalogue fee, but
    bounded, and positive for a service that charges one (a missing fee is a data error).

    A negative fee is field_violations' to name.
    """
    fee = submission.fee_baisa
    if fee > MAX_HISTORIC_FEE_BAISA:
        return [Violation("fee_baisa", f"must be at most {MAX_HISTORIC_FEE_BAISA} baisa")]
    if fee == 0 and service is not None and service.fee_baisa > 0:
        return [Violation("fee_baisa", "must be positive: the service charges a fee")]
    return []
