"""Runs inside the throwaway MLtraq environment (see generate.py): writes the databases and expectations.

Also ``python write_databases.py --persist-loop DB NAME N`` (the live test's writer):
persists one experiment with ``if_exists="replace"`` N times, one more run each
time, printing ``persisted <runs>`` after each.
"""

import json
import sys
import uuid
from pathlib import Path

import mltraq
import numpy as np
import pandas as pd
from mltraq import options
from mltraq.steps.codelog import codelog

options().set("tqdm.disable", True)


def plain(value):
    """MLtraq's loaded values as JSON (what expwatch shows them as when numpy/pyarrow are present)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.DataFrame):
        return {str(k): plain(v) for k, v in value.to_dict(orient="list").items()}
    if isinstance(value, pd.Series):
        return value.tolist()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[us]").item().isoformat() + "+00:00"
    if isinstance(value, np.generic):
        return value.item()
    return value


def train(run):
    run.fields.loss = round(1.0 / (run.params.lr * 100 + run.params.depth), 6)
    run.fields.status = "ok"


def evaluate(run):
    run.fields.accuracy = round(0.5 + run.params.depth / 10, 3)


def flaky(run):
    try:
        if run.params.i % 2:
            raise RuntimeError(f"diverged at step {run.params.i}")
        run.fields.status = "completed"
        run.fields.error = ""
    except RuntimeError as exc:
        run.fields.status = "failed"
        run.fields.error = str(exc)


def crash(run):
    run.fields.before = "written before the crash"
    raise ValueError("uncaught in step crash")


def values(run):
    run.fields.array = np.arange(run.params.n, dtype=np.int64) * 2
    run.fields.matrix = np.eye(2)
    run.fields.frame = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.25]})
    run.fields.series = pd.Series([1.5, 2.5])
    # At the top level a UUID goes to SQLite unserialized (which refuses it) and a datetime64 becomes
    # a pandas Timestamp MLtraq cannot serialize: MLtraq persists them only nested.
    run.fields.nested = {
        "a": [1, 2, {"b": None}],
        "t": (1, "x"),
        "ident": uuid.UUID(int=run.params.n),
        "when": np.datetime64("2024-01-02T17:16:15.123450", "us"),
    }


def write(out: Path) -> None:
    expected = {}
    runs_db = out / "runs.db"
    runs_db.unlink(missing_ok=True)
    session = mltraq.create_session(f"sqlite:///{runs_db}")
    e = session.create_experiment("grid")
    e.add_runs(lr=[0.01, 0.1], depth=[1, 2, 3])
    e.fields.dataset = "iris"
    e.execute([codelog([train, evaluate]), train, evaluate], n_jobs=1)
    e.persist()
    e = session.create_experiment("failing")
    e.add_runs(i=[0, 1, 2, 3])
    e.execute(flaky, n_jobs=1)
    e.persist()
    e = session.create_experiment("uncaught")
    e.add_runs(i=[0])
    try:
        e.execute([codelog([crash]), crash], n_jobs=1)
    except Exception as exc:  # MLtraq re-raises the step's exception; the runs persist as they are
        e.fields.note = f"execute raised {type(exc).__name__}"
    e.persist()
    session.create_experiment("empty").persist()
    e = session.create_experiment("values")
    e.add_runs(n=[2, 3])
    e.execute(values, n_jobs=1)
    e.persist()
    expected["runs.db"] = loaded(session)
    zlib_db = out / "zlib.db"
    zlib_db.unlink(missing_ok=True)
    session = mltraq.create_session(f"sqlite:///{zlib_db}")
    with options().ctx({"serialization.compression.codec": "zlib"}):
        e = session.create_experiment("compressed")
        e.add_runs(n=[2, 3])
        e.fields.codec = "zlib"
        e.execute(values, n_jobs=1)
        e.persist()
        expected["zlib.db"] = loaded(session, {"compressed": e})
    (out / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


def loaded(session, fallback=None):
    """Each experiment as MLtraq's loader returns it; where the loader fails, its error and the values written."""
    out = {}
    for name in session.ls()["name"]:
        try:
            e = session.load_experiment(name)
            error = None
        except Exception as exc:  # MLtraq 0.1.165 cannot read its own zlib blobs back
            e, error = fallback[name], f"{type(exc).__name__}: {exc}"
        out[name] = {
            "loader_error": error,
            "run_count": len(e.runs),
            "fields": plain(dict(e.fields)),
            "runs": {r.id_run.hex: plain(dict(r.fields)) for r in e.runs.values()},
        }
    return out


def persist_loop(db: str, name: str, times: int) -> None:
    options().set("tqdm.disable", False)  # MLtraq then writes the runs in chunks of 1,000, each its own commit
    session = mltraq.create_session(f"sqlite:///{db}")
    for n in range(1, times + 1):
        e = session.create_experiment(name)
        e.add_runs(i=list(range(n * 600)))
        e.execute(lambda run: run.fields.update(status="ok", i=run.params.i), n_jobs=1)
        e.persist(if_exists="replace")
        print(f"persisted {n * 600}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--persist-loop":
        persist_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        write(Path(sys.argv[1]))
