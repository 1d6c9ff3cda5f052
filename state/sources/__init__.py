"""Sources of experiment records: what the board, the CLI and the actions read from.

Importing this package registers every kind's opener (``open_source`` tries them
before the state-directory fallback). The hub and MLtraq kinds are registered
lazily: their modules (redis, SQLite decoding) load only for a spec that looks like
theirs, and ``HubSource``/``MltraqSource`` load on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from state.hub.connection import is_hub_url
from state.sources.base import MARK_STALE, RESUME, STOP, Delta, Source
from state.sources.directory import DirectorySource, source_name, unique_source_names
from state.sources.opening import SourceError, open_source, open_sources, register_lazy_opener, register_opener


def _may_be_mltraq(spec: str) -> bool:
    """A ``sqlite:///`` URL or a file (a directory never is): ``open_mltraq`` then checks the header."""
    return spec.startswith("sqlite:///") or Path(spec).is_file()


register_lazy_opener("redis", is_hub_url, "state.sources.hub:open_hub", what="a Redis hub")
register_lazy_opener("mltraq", _may_be_mltraq, "state.sources.mltraq:open_mltraq", what="an MLtraq database")

_LAZY = {"HubSource": "state.sources.hub", "MltraqSource": "state.sources.mltraq"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'state.sources' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "MARK_STALE",
    "RESUME",
    "STOP",
    "Delta",
    "DirectorySource",
    "HubSource",
    "MltraqSource",
    "Source",
    "SourceError",
    "open_source",
    "open_sources",
    "register_lazy_opener",
    "register_opener",
    "source_name",
    "unique_source_names",
]
