"""In-memory fakes that more than one unit test module runs the real code against."""

from typing import NamedTuple, TypeVar

from google.protobuf.message import Message

from sanad.errors import Unavailable

M = TypeVar("M", bound=Message)


class Published(NamedTuple):
    """One publish, as the broker would have taken it."""

    routing_key: str
    body: bytes
    message_type: str
    timeout_s: float | None


class RecordingPublisher:
    """The Publisher intake's operations and tracking take: records every publish, or refuses
    all of them as an unreachable broker does while `down`."""

    def __init__(self) -> None:
        self.sent: list[Published] = []
        self.down = False

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_type: str,
        message_id: str,
        timeout_s: float | None = None,
    ) -> None:
        if self.down:
            raise Unavailable("the message broker is unavailable; retry later")
        self.sent.append(Published(routing_key, body, message_type, timeout_s))

    def decoded(self, kind: type[M]) -> list[M]:
        """Every body sent, read as `kind`; each must have been published as that type."""
        assert [p.message_type for p in self.sent] == [kind.DESCRIPTOR.full_name] * len(self.sent)
        return [kind.FromString(p.body) for p in self.sent]
