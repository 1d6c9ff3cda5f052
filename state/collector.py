"""Keeping Python's cyclic garbage collector out of bulk work.

Building or decoding tens of thousands of small objects (a big file's runs,
the 100,000 run records of a new experiment) triggers collections that walk
everything alive; every one of those objects is kept, so the walks find
nothing and cost more than the building itself. Reference counting still
frees what it can while the collector is held off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused(*, then_freeze: bool = False) -> Iterator[None]:
    """Hold off cyclic garbage collection for the block; left alone if something else disabled it.

    Decoding 10,000 runs allocates about a million objects, which triggers full
    collections that walk everything alive (about 100 ms each here); the
    collector runs again afterwards. ``then_freeze``: what is alive at the end
    is kept out of every later collection (``gc.freeze``) before the collector
    runs again, for what lives as long as the process; otherwise the first
    allocation after the block walks all of it as young objects.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if then_freeze:
            gc.freeze()
    finally:
        if enabled:
            gc.enable()


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Keep what is alive now out of every collection during the block (``gc.freeze``), then give it back.

    For a process that holds one big structure for its whole work (the
    runner's experiment with its run records): without this, each full
    collection during the block walks all of it again. Frozen objects are
    still freed by reference counting; only cycles among them wait until the
    block ends.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
