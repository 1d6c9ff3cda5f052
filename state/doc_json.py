"""The runner's state file written again and again: the JSON of finished runs kept between writes.

The coordinator rewrites the whole file (a reader needs one consistent
document) every second or two while a study runs. At 100,000 runs each
rewrite serialised every run again, about 150 ms on an idle core and 300 ms
or more under load, though a completed run never changes again in its
attempt, and a pending one changes only when it starts. ``RunsJsonCache``
keeps the JSON of each block of runs until its owner says one of them
changed, and serialises only those blocks again; ``spliced_parts`` puts the
runs into the rest of the document. The bytes are exactly what
``ExperimentDoc.to_json`` gives (tests compare them), so readers see no
difference; files of up to ``INDENT_RUNS_UP_TO`` runs are indented and are
written the plain way, being small.
"""

from __future__ import annotations

import os

from pydantic import TypeAdapter

from state.native import INDENT_RUNS_UP_TO, ExperimentDoc, RunRecord, RunStatus

#: Set to 1 (the test suite does) to compare every cached encoding with ``to_json``: a place that
#: changes a run without ``forget`` then fails at its next write instead of writing a stale run.
CHECK_ENV = "EXPWATCH_CHECK_RUNS_CACHE"

BLOCK = 1024
"""Runs per cached block: big enough that a block is one serialiser call, small enough to fill between writes."""

_RUN_LIST = TypeAdapter(list[RunRecord])
_FIELDS = list(ExperimentDoc.model_fields)
_BEFORE_RUNS = frozenset(_FIELDS[: _FIELDS.index("runs")])
_AFTER_RUNS = frozenset(_FIELDS[_FIELDS.index("runs") + 1:])


def spliced_parts(doc: ExperimentDoc, runs_parts: list[bytes]) -> list[bytes]:
    """``doc`` as compact JSON in parts, ``runs_parts`` (the runs' elements and commas) as its runs.

    Parts, not one string: the store writes them with one ``writev``, where
    joining them copied the 26 MB of a 100,000-run file twice per write.
    """
    head = doc.model_dump_json(by_alias=True, include=_BEFORE_RUNS).encode("utf-8")
    tail = doc.model_dump_json(by_alias=True, include=_AFTER_RUNS).encode("utf-8")
    return [head[:-1], b',"runs":[', *runs_parts, b"],", tail[1:]]


class RunsJsonCache:
    """Serialises an experiment's runs block by block and keeps each block's JSON until ``forget``.

    The owner of the runs calls ``forget`` for every run it changes (the
    coordinator does at each place it sets a run's status). A block holding a
    running run is not kept even so: a long run's fields are sent, and may be
    stored, at every flush.
    """

    def __init__(self) -> None:
        self._blocks: dict[int, bytes] = {}
        self._check = os.environ.get(CHECK_ENV) == "1"

    def forget(self, index: int) -> None:
        self._blocks.pop(index // BLOCK, None)

    def runs_parts(self, runs: list[RunRecord]) -> list[bytes]:
        """The runs' JSON elements block by block, with a comma between blocks."""
        parts: list[bytes] = []
        for block in range(0, -(-len(runs) // BLOCK)):
            cached = self._blocks.get(block)
            if cached is None:
                chunk = runs[block * BLOCK:(block + 1) * BLOCK]
                cached = _RUN_LIST.dump_json(chunk, by_alias=True)[1:-1]
                if all(rec.status is not RunStatus.RUNNING for rec in chunk):
                    self._blocks[block] = cached
            if parts:
                parts.append(b",")
            parts.append(cached)
        return parts

    def parts(self, doc: ExperimentDoc) -> list[bytes]:
        """The state file's bytes for ``doc`` in parts: together the same as ``doc.to_json()``, sooner for a big one."""
        if len(doc.runs) <= INDENT_RUNS_UP_TO:
            return [doc.to_json().encode("utf-8")]
        parts = spliced_parts(doc, self.runs_parts(doc.runs))
        if self._check and b"".join(parts) != doc.to_json().encode("utf-8"):
            raise AssertionError("the cached runs' JSON differs from the document's: a run changed without forget()")
        return parts

    def encode(self, doc: ExperimentDoc) -> bytes:
        """The state file's bytes for ``doc``, joined."""
        return b"".join(self.parts(doc))
