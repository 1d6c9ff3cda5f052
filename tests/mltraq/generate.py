"""Write the MLtraq test databases with MLtraq itself, and what MLtraq's own loader reads back.

    python tests/mltraq/generate.py            # venv cached in ~/.cache/expwatch/mltraq-0.1.165

Installs ``mltraq`` (pinned) into a throwaway virtual environment (never into
expwatch's), runs ``write_databases.py`` there, and leaves in ``data/``:
``runs.db`` (a grid with codelog, runs that record errors, an uncaught step
exception, an empty experiment, NumPy/pandas/UUID/datetime64 values),
``zlib.db`` (the same kind of values, zlib-compressed) and ``expected.json``
(run counts, experiment fields and every run's fields as MLtraq's loader
returns them, or the loader's error). The files are committed: CI reads them
without installing MLtraq. ``venv_python()`` is also how the live test finds
a real MLtraq to write while expwatch reads.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

MLTRAQ = "mltraq==0.1.165"
HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "expwatch" / MLTRAQ.replace("==", "-")


def venv_python(root: Path | None = None) -> Path | None:
    """The cached environment's Python if MLtraq is installed in it (``$EXPWATCH_MLTRAQ_PYTHON`` wins)."""
    given = os.environ.get("EXPWATCH_MLTRAQ_PYTHON")
    if given:
        return Path(given)
    python = (root or default_venv()) / "bin" / "python"
    return python if (python.parent / ".mltraq-installed").exists() else None


def ensure_venv(root: Path) -> Path:
    python = root / "bin" / "python"
    stamp = root / "bin" / ".mltraq-installed"
    if not stamp.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", MLTRAQ], check=True)
        stamp.touch()
    return python


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=default_venv(), help="where the throwaway environment lives")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    python = ensure_venv(args.venv)
    args.out.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python), str(HERE / "write_databases.py"), str(args.out)], check=True, cwd=HERE)
    for path in sorted(args.out.iterdir()):
        print(f"{path.stat().st_size:>9,}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
