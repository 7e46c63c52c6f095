"""`python -m sanad.devstack.secantus_server [SecantusDB's options]`: SecantusDB, with CPython's
cyclic garbage collector tuned for a database's heap.

SecantusDB keeps its working data as millions of long-lived Python objects. Under write load,
CPython's default thresholds (700, 10, 10) ran a full collection about every half second: 187
in a 90-second benchmark, 80 to 105 ms each, and every one collected nothing. Every service's
call to the database waited behind those pauses. With these thresholds the same run made one.
Cycles are still collected, only in larger steps.

SecantusDB is GPL-2.0: this configures the interpreter, then runs the server's own entry point
by name, as `python -m secantus` does. No project code calls SecantusDB.
"""

import gc
import runpy

# Young collections every 50,000 allocations instead of 700; older generations correspondingly
# rarer. CPython still runs a full collection whenever the heap has grown by a quarter.
GC_THRESHOLDS = (50_000, 20, 100)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    runpy.run_module("secantus", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
