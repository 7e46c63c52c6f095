"""Linux: a child process receives a signal when the process that started it dies.

A killed test run, bench or devstack must not leave its database or services behind, busy and
holding their ports. `guarded` wraps the child's command line in a small Python program that
asks the kernel for the signal (prctl PR_SET_PDEATHSIG, kept across exec) and then execs the
command, so the Popen process is the command itself. Arming it in a `preexec_fn` instead ran
Python in the forked copy of a process with other threads (gRPC's among them), which may crash
or hang there: a SecantusDB start once died with SIGSEGV before it ran.
"""

import os
import signal
import sys

PR_SET_PDEATHSIG = 1

# argv: parent pid, signal number, then the command. Exits by the signal when the parent is
# already gone (it died before the prctl).
_GUARD = f"""
import ctypes, os, sys
parent, sig, command = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, sig)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
os.execv(command[0], command)
"""


def guarded(command: list[str], sig: signal.Signals) -> list[str]:
    """command, run so that the kernel sends it `sig` when this process dies."""
    return [sys.executable, "-c", _GUARD, str(os.getpid()), str(int(sig)), *command]
