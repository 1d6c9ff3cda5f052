"""Sources of experiment records: what the board, the CLI and the actions read from."""

from state.sources.base import MARK_STALE, RESUME, Delta, Source
from state.sources.directory import DirectorySource, source_name, unique_source_names

from state.sources.opening import SourceError, open_source, open_sources, register_opener
from state.sources.mltraq import MltraqSource  # registers its opener

__all__ = [
    "SourceError",
    "open_source",
    "open_sources",
    "register_opener",
    "MltraqSource","MARK_STALE", "RESUME", "Delta", "DirectorySource", "Source", "source_name", "unique_source_names"]
