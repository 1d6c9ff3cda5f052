"""Sources of experiment records: what the board, the CLI and the actions read from."""

from state.sources.base import MARK_STALE, RESUME, Delta, Source
from state.sources.directory import DirectorySource, source_name, unique_source_names

__all__ = ["MARK_STALE", "RESUME", "Delta", "DirectorySource", "Source", "source_name", "unique_source_names"]
