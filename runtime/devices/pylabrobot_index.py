"""Where pylabrobot defines a class, by name, found by reading its source as text.

PyLabRobot serializes a machine or backend as ``{"type": "<ClassName>"}`` and
deserializes it by searching the subclasses already imported. A backend whose
module nobody imported (``STARChatterboxBackend`` lives in
``pylabrobot.liquid_handling.backends.hamilton.STAR_chatterbox``) is then "not
found". This index says which pylabrobot module defines a class name without
importing anything, so that only that module is imported. Test modules are
left out: they are not where machines live, and importing them pulls in
test-only dependencies.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections import defaultdict
from pathlib import Path

_CLASS_LINE = re.compile(r"^class ([A-Za-z][A-Za-z0-9_]*)\b", re.MULTILINE)
_PUBLIC_PART = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MAX_SOURCE_BYTES = 2 * 1024 * 1024


def _is_test_module(parts: tuple[str, ...]) -> bool:
    return any(p in {"tests", "testing", "conftest"} or p.endswith("_tests") or p.startswith("test_") for p in parts)


@functools.cache
def _index() -> dict[str, tuple[str, ...]]:
    spec = importlib.util.find_spec("pylabrobot")
    if spec is None or not spec.submodule_search_locations:
        return {}
    found: dict[str, list[str]] = defaultdict(list)
    for location in spec.submodule_search_locations:
        root = Path(location)
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root).with_suffix("").parts
            if relative[-1] == "__init__":
                relative = relative[:-1]
            if _is_test_module(relative) or not all(_PUBLIC_PART.match(p) for p in relative):
                continue
            try:
                if path.stat().st_size > _MAX_SOURCE_BYTES:
                    continue
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            module = ".".join(("pylabrobot", *relative))
            for match in _CLASS_LINE.finditer(text):
                found[match.group(1)].append(module)
    return {name: tuple(modules) for name, modules in found.items()}


def modules_defining(class_name: str) -> tuple[str, ...]:
    """The pylabrobot modules whose source defines ``class_name`` at top level (usually one)."""
    return _index().get(class_name, ())
