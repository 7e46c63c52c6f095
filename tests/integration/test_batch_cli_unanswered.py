"""`sanadctl batch submit` with no batch worker consuming: its message says exactly how many
chunks it sent and how many were answered (the first chunk is answered before the others go)."""

import asyncio
import sys
from pathlib import Path

import pytest

from sanad.amqp.topology import Topology
from tests.integration.conftest import Stack, open_centre_with_service
from tests.integration.test_batch_cli import rows, write_rows

pytestmark = pytest.mark.integration


async def sanadctl_text(stack: Stack, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sanad.cli", *args,
        env=stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_a_file_of_three_chunks_nobody_answers_says_only_its_first_was_sent(
    stack: Stack, tmp_path: Path
) -> None:
    center_id, service = await open_centre_with_service(stack)
    path = write_rows(tmp_path / "rows.csv", rows(service))  # 10 rows: 3 chunks of 4
    code, out, err = await sanadctl_text(
        stack, "batch", "submit", str(path), "--center", center_id, "--chunk", "4",
        "--batch-id", "idle", "--wait", "2",
    )  # fmt: skip

    assert code == 1
    # Before: "0 of 3 chunks answered within 2 s", as if all three had been sent.
    assert "1 of 3 chunks sent (the others go once the first is answered), 0 answered" in err
    assert "within 2 s" in err
    assert "--batch-id idle --chunk 4" in err
    assert "Traceback" not in err
    assert out == ""
    # What the broker holds says the same: the first chunk alone waits in the batch queue.
    assert await stack.queue_depth(Topology(stack.prefix).batch_queue) == 1
