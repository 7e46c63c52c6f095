"""One stack per data folder: a second `make run` on the folder a running one uses would start
a second database on its files (WiredTiger refuses, and the refusal landed in the running
stack's mongo.log) and rewrite its sanadctl.env."""

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "devstack.lock"


class FolderInUse(Exception):
    """Another devstack holds the folder."""


def hold(folder: Path) -> IO[str]:
    """Lock folder for this process's life (the kernel lets go when it ends, however it ends);
    keep the returned file open. FolderInUse names the holder's pid when another holds it.

    The folder is its owner's alone (0700, narrowed if it was wider): it holds the database,
    whose civil-number hashes the dev secret, which is public, turns back into numbers.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    lock = (folder / LOCK_NAME).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise FolderInUse(
            f"{folder} is in use by another make run (pid {holder}): stop it, or give this one"
            " another SANAD_DEVSTACK_DATA (and SANAD_DEVSTACK_MONGO_PORT, ports and"
            " SANAD_AMQP_PREFIX)"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock
