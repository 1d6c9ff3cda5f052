"""From what the user typed (a path, a URL) to a source.

Sources are told apart by what they point at, never by a flag: a directory is a
state directory; other kinds (an MLtraq database, a Redis hub) register an opener
here. An argument nothing recognises is a one-line error naming what was tried.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from state.sources.base import Source
from state.sources.directory import DirectorySource, source_name, unique_source_names


class SourceError(Exception):
    """The argument names no source expwatch can read; the message says why in one line."""


#: An opener returns a source for ``spec`` or None when the spec is not its kind.
Opener = Callable[[str, bool, "str | None"], "Source | None"]


@dataclass
class _Registered:
    """An opener, or where to import it from once a spec looks like its kind (``module:function``):
    a command on a state directory then never imports the redis or SQLite code."""

    kind: str
    opener: Opener | None = None
    target: str | None = None
    claims: Callable[[str], bool] | None = None

    def resolve(self) -> Opener:
        if self.opener is None:
            module, function = str(self.target).split(":")
            self.opener = getattr(importlib.import_module(module), function)
        return self.opener


_OPENERS: list[_Registered] = []


def register_opener(kind: str, opener: Opener) -> None:
    """Let a source kind claim the specs it recognises (tried before the directory fallback)."""
    _OPENERS.append(_Registered(kind, opener=opener))


def register_lazy_opener(kind: str, claims: Callable[[str], bool], target: str) -> None:
    """Like ``register_opener``, with the opener (``module:function``) imported only when the cheap
    ``claims(spec)`` says the spec may be this kind's (the opener still has the last word)."""
    _OPENERS.append(_Registered(kind, target=target, claims=claims))


def default_name(spec: str) -> str:
    """A short label for ``spec``: a directory's (or its project's) name, a URL's host."""
    if "://" in spec:
        rest = spec.split("://", 1)[1]
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        return host or Path(rest).name or spec  # no host (sqlite:///file.db): the file's name
    return source_name(Path(spec))


def open_source(spec: str | Path, *, read_only: bool = False, name: str | None = None) -> Source:
    text = str(spec)
    for registered in _OPENERS:
        if registered.claims is not None and not registered.claims(text):
            continue
        source = registered.resolve()(text, read_only, name)
        if source is not None:
            return source
    path = Path(text)
    problem = not_a_directory(path)
    if problem is not None:
        raise SourceError(problem)
    return DirectorySource(path, read_only=read_only, name=name)


def not_a_directory(path: str | Path) -> str | None:
    """Why ``path`` cannot be a state directory, in the words every command uses; None when it can."""
    path = Path(path)
    if path.is_dir():
        return None
    if not path.exists():
        return f"no state directory at {path} (create it, or pass another one)"
    kinds = ", ".join(r.kind for r in _OPENERS)
    return f"{path} is not a directory" + (f" (nor a source of a known kind: {kinds})" if kinds else "")


def open_sources(specs: Iterable[str | Path], *, read_only: bool = False) -> list[Source]:
    """Each spec opened, with labels unique across them (the board keys rows by label)."""
    specs = [str(s) for s in specs]
    names = unique_source_names(default_name(s) for s in specs)
    return [open_source(spec, read_only=read_only, name=name) for spec, name in zip(specs, names)]


__all__ = ["SourceError", "default_name", "not_a_directory", "open_source", "open_sources", "register_lazy_opener", "register_opener"]
