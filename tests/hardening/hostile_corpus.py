"""A state directory built to attack expwatch, and a victim folder beside it.

Run as a script to look at it by hand::

    .venv/bin/python tests/hardening/hostile_corpus.py /tmp/hostile
    .venv/bin/expwatch /tmp/hostile/state

Every case is what someone with write access to a shared state directory can
put there: escape sequences and markup in every text field, ids that carry C1
bytes and lone surrogates, numbers too big to print, dates at the ends of the
calendar, sidecar files and folders replaced by symlinks to files outside,
paths to ``/dev/zero`` wherever a file names a file, a sparse 3 GB device
snapshot. ``Corpus.outside`` holds the files an attack would change; a test
proves none of them does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: Text that must never reach a terminal as it is: CSI (7-bit and the C1 byte), OSC retitle, BEL,
#: a bidi override, a carriage return, and Rich/Textual markup that closes a tag never opened.
ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e\r"
MARKUP = "[/][reverse]x[/reverse][@click=app.quit]q[/]"
HOSTILE = f"{MARKUP}{ESCAPES}"

NOW = datetime(2026, 3, 14, 9, 30, 0)


@dataclass
class Corpus:
    root: Path
    state: Path
    outside: Path
    ids: dict[str, str] = field(default_factory=dict)
    """Case name -> the experiment id (or file key) that carries it."""


def _lem_v1(experiment_id: str, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "experiment_id": experiment_id,
        "status": "completed",
        "cycle_id": 0,
        "config_path": None,
        "config_hash": None,
        "model_name": "m",
        "prompt_args": {},
        "num_processes": 1,
        "subprocess_pid": None,
        "process_progress": {},
        "started_at": (NOW - timedelta(hours=1)).isoformat(),
        "last_updated": NOW.isoformat(),
        "error_message": None,
        "completed_runs": {},
        "failed_runs": {},
        "total_runs": 0,
    }
    raw.update(extra)
    return raw


def _native(experiment_id: str, **extra: Any) -> dict[str, Any]:
    at = (NOW - timedelta(minutes=30)).astimezone().isoformat()
    raw: dict[str, Any] = {
        "schema": "expwatch.experiment/1",
        "experiment_id": experiment_id,
        "status": "interrupted",
        "num_processes": 1,
        "processes": {"0": {"process_index": 0, "status": "failed", "error_message": HOSTILE}},
        "runs": [
            {"id_run": "r-0000", "index": 0, "status": "completed", "params": {"p": HOSTILE}, "fields": {"f": HOSTILE}},
            {
                "id_run": "r-0001", "index": 1, "status": "failed", "params": {"p": 1},
                "exception": {"type": "ValueError", "message": HOSTILE, "traceback": f"Traceback:\n  {HOSTILE}\n"},
            },
        ],
        "steps": [{"name": "step", "qualname": f"step{ESCAPES}", "file": "/dev/zero", "line": 1,
                   "source": f"def step():\n    return '{HOSTILE}'\n", "source_hash": "0" * 16}],
        "history": [{"at": at, "from": None, "to": "running", "who": HOSTILE, "why": HOSTILE},
                    {"at": at, "from": "running", "to": "interrupted", "who": "t", "why": "stopped"}],
        "created_at": at,
        "started_at": at,
        "last_updated": at,
        "error_message": HOSTILE,
    }
    raw.update(extra)
    return raw


def _unused_pid() -> int:
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def _write(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2))


def build(root: Path) -> Corpus:
    """Write the corpus under ``root`` (``root/state`` and ``root/outside``); returns what is where."""
    state = root / "state"
    outside = root / "outside"
    state.mkdir(parents=True)
    outside.mkdir()
    corpus = Corpus(root, state, outside)
    (outside / "victim.sh").write_text("# sourced by a shell\n")
    (outside / "victim.log").write_text("a log that is not expwatch's\n")

    # -- the terminal: escapes and markup in every text field of every format ---------------
    corpus.ids["escapes"] = f"esc{ESCAPES}"
    _write(state / "esc.json", _lem_v1(corpus.ids["escapes"], model_name=HOSTILE, error_message=HOSTILE, status="failed"))
    corpus.ids["escapes in fields"] = "escfields"
    _write(state / "escfields.json", _lem_v1("escfields", model_name=HOSTILE, error_message=HOSTILE, status="failed",
                                             process_progress={"0": {"process_index": 0, "status": "failed",
                                                                     "error_message": HOSTILE}}))
    corpus.ids["escapes native"] = f"native{MARKUP}"
    _write(state / "native.json", _native(f"native{MARKUP}", name=HOSTILE))
    corpus.ids["markup"] = "a-[/]"
    _write(state / "markup.json", _lem_v1("a-[/]", model_name="[reverse]styled[/reverse]"))
    corpus.ids["reverse"] = "[reverse]rev"
    _write(state / "reverse.json", _lem_v1("[reverse]rev"))
    # A lone surrogate: JSON's "\udc9b" decodes to one, which UTF-8 cannot encode.
    corpus.ids["surrogate"] = "sur\udc9bx"
    (state / "surrogate.json").write_text(json.dumps(_lem_v1("sur\udc9bx", model_name="m\udcff")))
    # A broken file whose very name carries an escape.
    corpus.ids["bad name"] = "bad\x1b[31mname"
    (state / "bad\x1b[31mname.json").write_text("{ truncated")

    # -- one bad value must not take down the rest ----------------------------------------
    corpus.ids["huge int"] = "hugeint"
    (state / "hugeint.json").write_text(json.dumps(_lem_v1("hugeint")).replace('"cycle_id": 0', '"cycle_id": 1' + "0" * 5000))
    corpus.ids["huge int in params"] = "hugeparams"
    doc = _native("hugeparams", config={"big": 1})
    doc["runs"][0]["params"] = {"big": 1}
    (state / "hugeparams.json").write_text(json.dumps(doc).replace('{"big": 1}', '{"big": 1' + "0" * 5000 + "}"))
    corpus.ids["huge int in prompt args"] = "hugeprompt"
    (state / "hugeprompt.json").write_text(
        json.dumps(_lem_v1("hugeprompt", prompt_args={"n": 1})).replace('{"n": 1}', '{"n": 1' + "0" * 5000 + "}")
    )
    corpus.ids["huge float"] = "hugefloat"
    (state / "hugefloat.json").write_text(
        json.dumps(_native("hugefloat", status="completed")).replace('"num_processes": 1', '"num_processes": 1, "heartbeat_interval_s": 1' + "0" * 400)
    )
    corpus.ids["naive heartbeat"] = "naiveheartbeat"
    _write(state / "naiveheartbeat.json", _native("naiveheartbeat", heartbeat_at=NOW.isoformat()))
    corpus.ids["year one history"] = "yearone"
    doc = _native("yearone")
    doc["history"][0]["at"] = "0001-01-01T00:00:00"
    _write(state / "yearone.json", doc)
    corpus.ids["surrogate name"] = "surrogatename"
    (state / "surrogatename.json").write_text(json.dumps(_native("surrogatename", name="n\udcff")))

    # -- files named by files: /dev/zero, paths outside ------------------------------------
    corpus.ids["log outside"] = "logoutside"
    _write(state / "logoutside.json", _native("logoutside", log_path=str(outside / "victim.log")))
    corpus.ids["log dev zero"] = "logzero"
    _write(state / "logzero.json", _native("logzero", log_path="/dev/zero"))

    # -- the sidecar folder: symlinks out, a device, a sparse giant --------------------------
    sidecar = state / ".expwatch"
    (sidecar / "locks").mkdir(parents=True)
    (sidecar / "devices").mkdir()
    os.symlink(outside / "victim.sh", sidecar / "journal.jsonl")
    corpus.ids["dead running"] = "deadrunning"
    _write(state / "deadrunning.json", _lem_v1("deadrunning", status="running", subprocess_pid=_unused_pid()))
    os.symlink(outside / "created-by-lock", sidecar / "locks" / "deadrunning.lock")
    os.symlink("/dev/zero", sidecar / "devices" / "zero.json")
    with open(sidecar / "devices" / "sparse.json", "wb") as handle:
        handle.truncate(3 * 1024**3)
    _write(sidecar / "devices" / "years.json", {
        "schema": "expwatch.devices/1", "workcell": "w", "taken_at": "9999-12-31T23:59:59",
        "devices": [
            {"name": f"dev{ESCAPES}", "type": HOSTILE, "backend": "b", "status": "error", "error": HOSTILE,
             "updated_at": "0001-01-01T00:00:00"},
        ],
    })
    return corpus


if __name__ == "__main__":
    built = build(Path(sys.argv[1]))
    print(f"state directory: {built.state}\nvictims:         {built.outside}")
