"""One stack per data folder: a second `make run` on a folder in use says so and starts nothing."""

import subprocess
import sys
from pathlib import Path

import pytest

from sanad.devstack import data_lock

HOLD = (
    "import sys, time; from pathlib import Path; from sanad.devstack import data_lock;"
    " held = data_lock.hold(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)"
)


def test_a_folder_held_by_another_process_is_refused_naming_its_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(
            data_lock.FolderInUse, match=rf"in use by another make run \(pid {holder.pid}\)"
        ):
            data_lock.hold(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    # The kernel let go when the holder died, killed or not: the folder is free again.
    data_lock.hold(tmp_path).close()


def test_the_folder_is_made_when_missing_and_names_its_holder(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "data"
    held = data_lock.hold(folder)
    try:
        assert (folder / data_lock.LOCK_NAME).read_text().strip().isdigit()
    finally:
        held.close()


def test_the_data_folder_is_its_owners_alone_made_or_narrowed(tmp_path: Path) -> None:
    # It holds the database: with the public dev secret, a hash read there is a civil number.
    made, wide = tmp_path / "made", tmp_path / "wide"
    wide.mkdir(mode=0o755)
    for folder in (made, wide):
        held = data_lock.hold(folder)
        try:
            assert folder.stat().st_mode & 0o777 == 0o700
        finally:
            held.close()
