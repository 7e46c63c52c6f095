"""Tunes CPython's cyclic garbage collector for SecantusDB's heap before the server starts.

mongo_server.start puts this folder on the PYTHONPATH of `python -m secantus` only; CPython
imports `sitecustomize` at start-up. Nothing here touches SecantusDB (GPL-2.0, never imported).

SecantusDB keeps its working data as millions of long-lived Python objects. Under write load,
the default thresholds (700, 10, 10) ran a full collection about every half second: 187 in a
90-second benchmark, 80 to 105 ms each, and every one collected nothing. Every service's call
to the database waited behind those pauses. With these thresholds the same run made one.
"""

import gc

# Young collections every 50,000 allocations instead of 700; older generations correspondingly
# rarer. CPython still runs a full collection whenever the heap has grown by a quarter, so
# cycles are still collected, in larger steps.
GC_THRESHOLDS = (50_000, 20, 100)

gc.set_threshold(*GC_THRESHOLDS)
