"""Sources of experiment records: what the board, the CLI and the actions read from.

Importing this package registers every kind's opener (``open_source`` tries them
before the state-directory fallback).
"""

from state.sources.base import MARK_STALE, RESUME, STOP, Delta, Source
from state.sources.directory import DirectorySource, source_name, unique_source_names
from state.sources.opening import SourceError, open_source, open_sources, register_opener
from state.sources.hub import HubSource  # noqa: E402 - registers the redis:// opener
from state.sources.mltraq import MltraqSource  # noqa: E402 - registers the SQLite opener

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
    "register_opener",
    "source_name",
    "unique_source_names",
]
