"""Linux: a child process receives a signal when the process that started it dies.

A killed test run, bench or devstack must not leave its database or services behind, busy and
holding their ports. Used as `preexec_fn`; it only sets a process attribute, no locks involved.
"""

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def signal_on_parent_death(sig: signal.Signals) -> Callable[[], None]:
    """A preexec_fn that asks the kernel to send `sig` to the child when its parent dies."""
    parent = os.getpid()

    def arm() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
            if os.getppid() != parent:  # it died between the fork and the prctl
                os.kill(os.getpid(), sig)

    return arm
