"""The layering of design §1, enforced: app -> (widgets | runtime) -> state."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


def _offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{where} imports {mod}"
        for where, mod in _imports(package)
        if any(mod == f or mod.startswith(f + ".") for f in forbidden)
    )


def test_state_imports_no_ui_and_no_runtime():
    assert _offending("state", ("textual", "rich", "runtime", "widgets", "app")) == []


def test_runtime_imports_no_ui():
    assert _offending("runtime", ("textual", "rich.live", "rich.console", "widgets", "app")) == []


def test_widgets_never_import_runtime_or_app():
    assert _offending("widgets", ("runtime", "app")) == []


def test_import_linter_contracts_hold():
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_runs_without_textual():
    """state/ and runtime/ load in an interpreter where textual cannot be imported."""
    code = (
        "import sys; sys.modules['textual'] = None\n"
        "import importlib, pkgutil, state, runtime\n"
        "for pkg in (state, runtime):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_no_screen_reaches_into_another():
    """Screens own their widgets: nothing in app/ digs through the screen stack to find them."""
    offending = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "app").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "screen_stack[" in line
    ]
    assert offending == []


def _import_error(modules: str, blocked: tuple[str, ...]) -> str:
    """What importing ``modules`` (comma-separated) says in a fresh interpreter where ``blocked`` cannot be imported ("" if it worked)."""
    code = "".join(f"import sys; sys.modules[{name!r}] = None\n" for name in blocked) + f"import {modules}\nprint('ok')\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return "" if result.stdout.strip() == "ok" else result.stderr or result.stdout


def test_board_and_sources_import_no_textual():
    assert _import_error("state.board, state.sources, state.sources.directory", ("textual", "rich")) == ""


def test_no_undefined_names():
    """Imports moved into the functions that use them (start-up speed) must leave no name undefined:
    a static check finds what a test path that never reaches the line would miss."""
    result = subprocess.run(
        [sys.executable, "-m", "pyflakes", "app", "state", "runtime", "widgets", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    undefined = [line for line in result.stdout.splitlines() if "undefined name" in line]
    assert undefined == [], "\n".join(undefined)


def test_dashboard_modules_import_no_pydantic():
    """The first screen is drawn without pydantic (its import and the model classes cost more than
    the rest of expwatch's modules together): the models load when a file needs them."""
    modules = "app.cli, app.commands.dashboard, app.app, app.screens.main, state.board, state.sources"
    assert _import_error(modules, ("pydantic", "pydantic_core")) == ""


def test_listing_loads_no_module_it_does_not_use(tmp_path):
    """`expwatch list` starts in tens of milliseconds: what only other commands or the dashboard need
    (each of these once cost it 5-20 ms) stays unloaded, whatever module moves where."""
    unused = ("textual", "pydantic", "pydantic_core", "concurrent.futures", "logging", "tempfile", "socket", "pkgutil", "psutil", "redis", "sqlite3")
    code = (
        "import sys, io, contextlib\nfrom app.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    code = main(['list', '--json', '--source', {str(tmp_path)!r}])\n"
        f"print(code, [m for m in {unused!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split(None, 1) == ["0", "[]\n"], result.stdout + result.stderr
