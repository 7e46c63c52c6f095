"""Tunes CPython for SecantusDB before the server starts: its garbage collector and GIL hand-off.

mongo_server.start puts this folder on the PYTHONPATH of `python -m secantus` only; CPython
imports `sitecustomize` at start-up. Nothing here touches SecantusDB (GPL-2.0, never imported).

SecantusDB keeps its working data as millions of long-lived Python objects. Under write load,
the default thresholds (700, 10, 10) ran a full collection about every half second: 187 in a
90-second benchmark, 80 to 105 ms each, and every one collected nothing. Every service's call
to the database waited behind those pauses. With these thresholds the same run made one.

SecantusDB serves each connection on a thread of its own, so a short request (a claim) waits for
the GIL behind a long one (a worker's transaction of a hundred documents). CPython hands the GIL
over every 5 ms by default, and a request needs it several times on its way through.
"""

import gc
import sys

# Young collections every 50,000 allocations instead of 700; older generations correspondingly
# rarer. CPython still runs a full collection whenever the heap has grown by a quarter, so
# cycles are still collected, in larger steps.
GC_THRESHOLDS = (50_000, 20, 100)

gc.set_threshold(*GC_THRESHOLDS)

# Hand the GIL over every millisecond instead of every 5. At half the unary load, intake's
# p50 / p99 went from 16-21 / 60-85 ms to 12-18 / 41-60 ms (three stacks of three runs each,
# alternating); the quick benchmark's throughputs did not move beyond their noise.
SWITCH_INTERVAL_S = 0.001

sys.setswitchinterval(SWITCH_INTERVAL_S)
