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
    what: str = ""
    """The kind in words, for a message ("an MLtraq database")."""

    def resolve(self) -> Opener:
        if self.opener is None:
            module, function = str(self.target).split(":")
            self.opener = getattr(importlib.import_module(module), function)
        return self.opener


_OPENERS: list[_Registered] = []


def register_opener(kind: str, opener: Opener, *, what: str | None = None) -> None:
    """Let a source kind claim the specs it recognises (tried before the directory fallback);
    ``what`` names the kind in messages (default "a KIND source")."""
    _OPENERS.append(_Registered(kind, opener=opener, what=what or f"a {kind} source"))


def register_lazy_opener(kind: str, claims: Callable[[str], bool], target: str, *, what: str | None = None) -> None:
    """Like ``register_opener``, with the opener (``module:function``) imported only when the cheap
    ``claims(spec)`` says the spec may be this kind's (the opener still has the last word)."""
    _OPENERS.append(_Registered(kind, target=target, claims=claims, what=what or f"a {kind} source"))


@dataclass(frozen=True)
class SourceKind:
    """A registered kind of source other than a state directory."""

    name: str
    """As registered: ``redis``, ``mltraq``."""
    what: str
    """In words: "a Redis hub", "an MLtraq database"."""


def default_name(spec: str) -> str:
    """A short label for ``spec``: a directory's (or its project's) name, a URL's host."""
    if "://" in spec:
        rest = spec.split("://", 1)[1]
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        return host or Path(rest).name or spec  # no host (sqlite:///file.db): the file's name
    return source_name(Path(spec))


def _claimed(text: str, read_only: bool, name: str | None) -> tuple[_Registered, Source] | None:
    """The first registered kind whose opener takes ``text``, and the source it opened (raises ``SourceError``)."""
    for registered in _OPENERS:
        if registered.claims is not None and not registered.claims(text):
            continue
        source = registered.resolve()(text, read_only, name)
        if source is not None:
            return registered, source
    return None


def open_source(spec: str | Path, *, read_only: bool = False, name: str | None = None) -> Source:
    text = str(spec)
    claimed = _claimed(text, read_only, name)
    if claimed is not None:
        return claimed[1]
    problem = not_a_directory(text)
    if problem is not None:
        raise SourceError(problem)
    return DirectorySource(Path(text), read_only=read_only, name=name)


def kind_of(spec: str | Path) -> SourceKind | None:
    """The kind that takes ``spec`` when it is not a state directory (None: none does, as for any
    directory), told exactly as ``open_source`` tells it: a spec that looks like a kind's but
    cannot be opened as one (``sqlite:///`` naming no file, a bad hub URL) raises its
    ``SourceError``. What was opened to tell is closed again; nothing is connected to."""
    claimed = _claimed(str(spec), True, None)
    if claimed is None:
        return None
    registered, source = claimed
    close = getattr(source, "close", None)
    if close is not None:
        close()
    return SourceKind(registered.kind, registered.what)


def not_a_directory(path: str | Path) -> str | None:
    """Why ``path`` cannot be a state directory, in the words every command uses; None when it can.

    ``path`` is printed as given (a ``str`` as typed: ``Path`` would fold a URL's ``//``)."""
    shown = str(path)
    path = Path(path)
    if path.is_dir():
        return None
    if not path.exists():
        return f"no state directory at {shown} (create it, or pass another one)"
    kinds = ", ".join(r.kind for r in _OPENERS)
    return f"{shown} is not a directory" + (f" (nor a source of a known kind: {kinds})" if kinds else "")


def open_sources(specs: Iterable[str | Path], *, read_only: bool = False) -> list[Source]:
    """Each spec opened, with labels unique across them (the board keys rows by label)."""
    specs = [str(s) for s in specs]
    names = unique_source_names(default_name(s) for s in specs)
    return [open_source(spec, read_only=read_only, name=name) for spec, name in zip(specs, names)]


__all__ = ["SourceError", "SourceKind", "default_name", "kind_of", "not_a_directory", "open_source", "open_sources", "register_lazy_opener", "register_opener"]
