"""Listing replies that fit one gRPC message, however large the entities they carry: the
registry's centres and services, intake's transactions.

A page is bounded by count (page_size) and, here, by bytes: it stops before its encoded size
would pass the server's message limit, less a margin for the token, and continues after its
last entity, so paging always proceeds. Every entity the rules allow fits one message on its
own (tests/unit/test_registry_licence_bounds.py; a transaction's history is capped for the same
reason, tests/unit/test_intake_tracking_rules.py), so a page holds at least one.
"""

from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
# gRPC's default limit, the one clients built without our settings also receive by.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def reply_budget(max_message_bytes: int) -> int:
    """Bytes a page's entities may take: the limit less a sixteenth for the rest of the reply."""
    return max_message_bytes - max_message_bytes // 16


def fitted(
    messages: list[M], key: Callable[[M], str], next_after: str, max_message_bytes: int
) -> tuple[list[M], str]:
    """The leading messages that fit the budget, and the key to continue after: the last kept
    one's when the page was cut, else the page's own next_after."""
    budget, used = reply_budget(max_message_bytes), 0
    for count, message in enumerate(messages):
        used += _repeated_entry_size(message.ByteSize())
        if count and used > budget:
            return messages[:count], key(messages[count - 1])
    return messages, next_after


def _repeated_entry_size(size: int) -> int:
    """An entry of a repeated message field: a one-byte tag, the length as a varint, the body."""
    return 1 + max(1, (size.bit_length() + 6) // 7) + size
