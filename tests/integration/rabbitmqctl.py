"""The local broker's own control tool, for what the AMQP protocol cannot do: set a policy,
close another client's connection. Tests that need it skip without it (`needs_rabbitmqctl`)."""

import asyncio
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
