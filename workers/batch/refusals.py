"""Why a batch submission is refused as a whole, before any item is judged; no I/O.

A refusal is dead-lettered with its reason (one of DEAD_LETTER_REASONS), audited, and answered
when the message names a reply queue it may be answered on (may_reply_to).
"""

import re
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage
from google.protobuf.message import DecodeError

from sanad.amqp.batches import SUBMISSION_TYPE, batch_id_problem
from sanad.amqp.topology import CONTENT_TYPE
from sanad.amqp.verdicts import Dead
from sanad.domain.characters import code_violations
from sanad.domain.codes import MAX_CODE_LENGTH
from sanad.v1 import events_pb2
from sanad.wire_format import wire_fields
from workers.batch.authorization import Authorize, MayMigrate
from workers.batch.content import MAX_HISTORY_STEPS

# Every reason this worker dead-letters with (its counters start at zero).
DEAD_LETTER_REASONS = (
    "unknown-type",
    "undecodable",
    "invalid",
    "too-large",
    "body-too-large",
    "not-allowed",
    "history-not-allowed",
    "batch-id-in-use",
    "batch-id-reused",
    "bad-reply-to",
)
# Answers go only to a queue the broker named (amq.gen-*: a submitter's exclusive reply queue,
# README "Batch submitters"), never to a work queue or any other queue the sender names.
REPLY_TO = re.compile(r"amq\.gen-[A-Za-z0-9_-]{1,200}")
REPLY_TO_RULE = "is not a server-named reply queue (amq.gen-*); nothing was answered or stored"
# The fields of a BatchSubmission that hold its items.
_ITEM_FIELDS = frozenset(
    events_pb2.BatchSubmission.DESCRIPTOR.fields_by_name[name].number
    for name in ("items", "history_items")
)
_HISTORY_FIELD = events_pb2.BatchSubmission.DESCRIPTOR.fields_by_name["history_items"].number
# Fields a batch, or a history item, may hold besides its items or steps.
_FIELDS_BESIDE = 8


@dataclass(frozen=True)
class Limits:
    max_items: int = 5000
    chunk: int = 1000
    # Largest body parsed at all (BatchSettings.batch_max_bytes).
    max_bytes: int = 16 * 1024 * 1024
    # How long the dead letter of an answered refusal is kept (BatchSettings
    # .batch_dead_letter_ttl_s); None: until an operator takes it.
    refusal_ttl_s: float | None = None


def unread_refusal(message: AbstractIncomingMessage, limits: Limits) -> Dead | None:
    """What is wrong with the message before its body is parsed."""
    if message.type != SUBMISSION_TYPE:
        return Dead("unknown-type", f"message type {message.type!r} is not handled here")
    if (named := other_content_type(message.content_type)) is not None:
        # A JSON or CSV body read as protobuf fails with a parser's message, or, by chance,
        # parses into something the sender never meant.
        return Dead(
            "undecodable",
            f"content_type {named[:100]!r}: a batch is a binary protobuf {SUBMISSION_TYPE}"
            f" ({CONTENT_TYPE}); send it so, or without a content_type",
        )
    if len(message.body) > limits.max_bytes:
        # Refused unread: parsing costs time and memory in proportion to the body.
        return Dead(
            "body-too-large",
            f"message body of {len(message.body)} bytes; a batch may be at most"
            f" {limits.max_bytes} bytes: send its items in smaller batches",
        )
    return None


# Media types a protobuf body goes by: ours, the registered one, other clients' names, and the
# generic one many AMQP clients stamp on any bytes.
PROTOBUF_MEDIA_TYPES = frozenset(
    {
        CONTENT_TYPE,
        "application/protobuf",
        "application/x-google-protobuf",
        "application/vnd.google.protobuf",
        "application/octet-stream",
    }
)


def other_content_type(content_type: str | None) -> str | None:
    """The content type a message names when it is not one a protobuf body goes by; None for
    those, or for none at all (the AMQP type already says what the body is)."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return None if media in PROTOBUF_MEDIA_TYPES else content_type


def read_refusal(
    message: AbstractIncomingMessage,
    submission: events_pb2.BatchSubmission,
    limits: Limits,
    may_submit: Authorize,
    may_migrate: MayMigrate,
) -> Dead | None:
    """What is wrong with the batch it carries, or with its sender's rights to it; parses it
    into submission.

    Its items, and the steps of its history items, are counted in the body before any is
    parsed: within the byte limit, a body of empty items holds millions, about 2 bytes each on
    the wire and 100 in memory once parsed (a worker under its 768 MiB limit was killed parsing
    one, again at every redelivery, and the batches behind it dead-lettered by the delivery
    limit; one history item of 8 million empty steps took another to 633 MB)."""
    try:
        shape = _shape(message.body, limits.max_items)
        submission.ParseFromString(shape.header)
        if shape.too_large is None:
            submission.ParseFromString(message.body)
    except DecodeError as error:
        return Dead("undecodable", f"not a valid {SUBMISSION_TYPE}: {error}")
    if (invalid := _invalid(submission)) is not None:
        return Dead("invalid", invalid)
    if shape.too_large is not None:
        return Dead("too-large", shape.too_large)
    if not may_submit(message.user_id or "", submission.center_id):
        return Dead("not-allowed", f"not allowed to submit for centre {submission.center_id!r}")
    if submission.history_items and not may_migrate(message.user_id or ""):
        # Migrated history (any status, actor, rating and past time) counts in the rollups
        # the award and reports read: a centre's own user could forge its record.
        return Dead(
            "history-not-allowed",
            f"user {message.user_id or ''!r} may not send history_items (migrated history):"
            " only trusted users (SANAD_BATCH_TRUSTED_USERS) may; nothing was stored",
        )
    return None


@dataclass(frozen=True)
class _Shape:
    """What a BatchSubmission's wire format says before it is parsed: its fields other than its
    items, and why it is too large to parse, if it is."""

    header: bytes
    too_large: str | None


def _shape(body: bytes, max_items: int) -> _Shape:
    """Read the top level of body, and of each history item, without parsing any item.

    Reading stops at the first bound passed, so it costs no more than a batch at its limits:
    max_items items and history items, a few fields besides (fields protobuf does not know
    count too: millions of them took seconds to read), and the fields of history items (their
    steps, MAX_HISTORY_STEPS each at most, and a few more).

    Raises DecodeError for a body that is not protobuf's wire format at those levels."""
    view, header = memoryview(body), bytearray()
    items = nested = 0
    most_nested = max_items * (MAX_HISTORY_STEPS + _FIELDS_BESIDE)
    too_many_items = f"over {max_items} items; a batch may carry at most that many"
    for fields, (field, start, value_at, end) in enumerate(wire_fields(view), start=1):
        if fields > max_items + _FIELDS_BESIDE:
            return _Shape(bytes(header), too_many_items)
        if field not in _ITEM_FIELDS or value_at is None:
            header += view[start:end]
            continue
        items += 1
        if items > max_items:
            return _Shape(bytes(header), too_many_items)
        if field != _HISTORY_FIELD:
            continue
        for _ in wire_fields(view[value_at:end]):
            nested += 1
            if nested > most_nested:
                return _Shape(
                    bytes(header),
                    f"history items of over {most_nested} fields in all; a batch may carry at"
                    f" most {max_items} items of at most {MAX_HISTORY_STEPS} steps",
                )
    return _Shape(bytes(header), None)


def _invalid(submission: events_pb2.BatchSubmission) -> str | None:
    """What is wrong with the batch's own fields; its ids are kept and answered, so bounded,
    and hold no control or invisible character (batch_id_problem)."""
    if problem := batch_id_problem(submission.batch_id):  # sanadctl's rule too
        return problem
    if len(submission.center_id) > MAX_CODE_LENGTH:
        return f"center_id must be at most {MAX_CODE_LENGTH} characters"
    if found := code_violations({"center_id": submission.center_id}):
        return "; ".join(f"{violation.field} {violation.description}" for violation in found)
    return None


def may_reply_to(reply_to: str) -> bool:
    """No reply queue (nothing is answered), or a server-named one."""
    return not reply_to or REPLY_TO.fullmatch(reply_to) is not None
