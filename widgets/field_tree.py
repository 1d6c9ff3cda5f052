"""Nested values (a run's params, fields, state, the config) as an expandable tree.

Reloads rebuild the tree from new data; the nodes a user expanded (by path)
and the cursor's node stay as they were, so a live update does not fold
everything away under the reader.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from state.text import printable
from widgets.run_table import format_value

#: Children shown per node; the rest are summarised in one leaf.
MAX_CHILDREN = 200


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"{{{_plural(len(value), 'key')}}}" if value else "{}"
    return f"[{_plural(len(value), 'item')}]" if value else "[]"


class FieldTree(Tree[str]):
    """Named sections of nested values; node data is the node's path (``section/key/0``)."""

    DEFAULT_CSS = """
    FieldTree {
        background: $surface;
    }
    """

    def __init__(self, label: str = "run", *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(label, data="", name=name, id=id, classes=classes)
        self.show_root = False
        self._sections: tuple[tuple[str, Any], ...] | None = None

    def show_sections(self, sections: Sequence[tuple[str, Any]], *, expand: Sequence[str] = ()) -> None:
        """Show ``(title, value)`` sections; ``expand`` names those open when the tree was empty."""
        sections = tuple(sections)
        if sections == self._sections:
            return
        first = not self._sections
        expanded = set(expand) if first else self._expanded_paths()
        cursor = None if first or self.cursor_node is None else self.cursor_node.data
        self._sections = sections
        self.clear()
        for title, value in sections:
            self._add(self.root, title, title, value)
        self.root.expand()
        for node in self._walk(self.root):
            if node.data in expanded:
                node.expand()
        if cursor is not None:
            self.call_after_refresh(self._restore_cursor, cursor)

    def _restore_cursor(self, path: str) -> None:
        for node in self._walk(self.root):
            if node.data == path:
                self.move_cursor(node, animate=False)
                return

    def _expanded_paths(self) -> set[str]:
        return {node.data for node in self._walk(self.root) if node.is_expanded and node.data}

    def _walk(self, node: TreeNode[str]) -> Iterator[TreeNode[str]]:
        for child in node.children:
            yield child
            yield from self._walk(child)

    def _add(self, parent: TreeNode[str], key: str, path: str, value: Any) -> None:
        key = printable(key)
        if isinstance(value, Mapping | list | tuple):
            label = Text.assemble((key, "bold"), "  ", (_summary(value), "dim"))
            node = parent.add(label, data=path, allow_expand=bool(value))
            items = list(value.items()) if isinstance(value, Mapping) else list(enumerate(value))
            for child_key, child in items[:MAX_CHILDREN]:
                self._add(node, str(child_key), f"{path}/{child_key}", child)
            if len(items) > MAX_CHILDREN:
                node.add_leaf(Text(f"… {len(items) - MAX_CHILDREN} more", style="dim italic"), data=f"{path}/…")
            return
        text = format_value(value) if value is not None else "null"
        parent.add_leaf(Text.assemble((key, "bold"), ": ", text), data=path)


__all__ = ["FieldTree"]
