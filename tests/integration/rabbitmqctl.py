"""The local broker's own control tool, for what the AMQP protocol cannot do: set a policy,
close another client's connection, count a queue's unacknowledged messages. Tests that need it
skip without it (`needs_rabbitmqctl`)."""

import asyncio
import re
import shutil

import pytest

needs_rabbitmqctl = pytest.mark.skipif(
    shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl, the local broker's tool"
)


async def rabbitmqctl(*args: str) -> str:
    """Run it; its output, or RuntimeError with what it printed on failure."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {err.decode()}")
    return out.decode()


async def set_policy(name: str, pattern: str, definition: str, priority: int = 0) -> None:
    """A policy of the default vhost's queues (RabbitMQ applies one per queue: the highest
    priority)."""
    await rabbitmqctl(
        "set_policy", "--apply-to", "queues", "--priority", str(priority), name, pattern, definition
    )


# A queue's ready and unacknowledged counts, read from the queue itself at one moment (a quorum
# queue's from its Raft state, in one query). `list_queues` gives a quorum queue's counts as of
# its last tick, seconds old (it showed 0 and 0 while four messages were unacknowledged), so it
# cannot tell that a queue has settled; AMQP's passive declare counts only the ready ones.
_COUNTS = """
{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"VHOST">>, queue, <<"QUEUE">>)),
case amqqueue:get_type(Q) of
    rabbit_quorum_queue ->
        {ok, {_, Counts}, _} = ra:local_query(amqqueue:get_pid(Q), fun(State) ->
            {rabbit_fifo:query_messages_ready(State),
             rabbit_fifo:query_messages_checked_out(State)}
        end),
        Counts;
    _ ->
        [{_, Ready}, {_, Unacked}] =
            rabbit_amqqueue:info(Q, [messages_ready, messages_unacknowledged]),
        {Ready, Unacked}
end.
"""
_PLAIN_NAME = re.compile(r"[\w.\-/]+")


async def ready_and_unacked(queue: str, vhost: str = "/") -> tuple[int, int]:
    """Messages of the queue waiting for a consumer, and delivered but not yet acknowledged."""
    if not (_PLAIN_NAME.fullmatch(queue) and _PLAIN_NAME.fullmatch(vhost)):
        raise ValueError(f"not a plain queue or vhost name: {queue!r} in {vhost!r}")
    expression = _COUNTS.replace("VHOST", vhost).replace("QUEUE", queue)
    out = await rabbitmqctl("eval", expression, "-q")
    ready, unacked = out.strip().strip("{}").split(",")
    return int(ready), int(unacked)


async def settled(queue: str) -> bool:
    """Whether the queue holds nothing: none ready, none delivered and still unacknowledged."""
    return await ready_and_unacked(queue) == (0, 0)
