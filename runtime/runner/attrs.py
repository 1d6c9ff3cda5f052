"""Attribute access as item access: ``run.fields.x`` is ``run.fields["x"]``, ``run.shared.x`` is ``run.shared["x"]``."""

from __future__ import annotations

from typing import Any


class ItemAttributes:
    """Maps attribute get, set and delete onto the item operations of the class it is mixed into."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]  # type: ignore[index]
        except KeyError:
            raise AttributeError(self._no_attribute(name)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value  # type: ignore[index]

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]  # type: ignore[attr-defined]
        except KeyError:
            raise AttributeError(self._no_attribute(name)) from None

    def _no_attribute(self, name: str) -> str:
        return name
