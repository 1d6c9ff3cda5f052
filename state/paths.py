"""Experiment ids and the paths derived from them.

No id read from a file or typed on the command line may make expwatch read or
write outside the state directory: ids become file names only through
``sanitize_experiment_id`` and every derived path is checked with
``ensure_inside``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_LENGTH = 255
#: Longest file name most filesystems take (bytes, after UTF-8 encoding).
MAX_NAME_BYTES = 255

#: Folder inside the state directory that holds expwatch's own sidecars
#: (locks, temp files, journal, device snapshots, logs). It is never scanned.
SIDECAR_DIR = ".expwatch"
#: Files that live beside experiments but are not experiments.
NON_EXPERIMENT_NAMES = frozenset({"campaign_manifest.json", "experiment_id.txt"})
#: A llenergymeasure study folder's checkpoint file (``<results>/<study>_<timestamp>/manifest.json``).
MANIFEST_NAME = "manifest.json"
#: Folders inside a study that hold its artefacts, never studies of their own.
STUDY_ARTEFACT_DIRS = frozenset({"_study-artefacts", "failed-runs"})


class UnsafePathError(ValueError):
    """A path derived from untrusted input would leave the state directory."""


def sanitize_experiment_id(experiment_id: str) -> str:
    """Return the file stem llenergymeasure uses for ``experiment_id``.

    Every character that is not alphanumeric (``str.isalnum``, so letters of
    any script count) and not one of ``_-.`` becomes ``_``: the same rule as
    llenergymeasure's ``StateManager``, so both name a given id's file alike.
    No result holds a path separator or NUL, whatever the input.
    """
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in experiment_id)


def unsafe_id_reason(experiment_id: str) -> str | None:
    """Why ``experiment_id`` is unsafe to display or act on, or None if it is fine."""
    if not experiment_id:
        return "empty experiment id"
    if len(experiment_id) > MAX_ID_LENGTH:
        return f"experiment id longer than {MAX_ID_LENGTH} characters"
    if _CONTROL.search(experiment_id):
        return "experiment id contains control characters"
    if experiment_id.startswith(("/", "\\", "~")):
        return "experiment id looks like an absolute path"
    parts = re.split(r"[/\\]", experiment_id)
    if any(part in (".", "..") for part in parts):
        return "experiment id contains a '..' or '.' path component"
    return None


def ensure_inside(root: Path, candidate: Path) -> Path:
    """Return ``candidate`` resolved, or raise if it is not inside ``root``."""
    root_real = Path(os.path.realpath(root))
    real = Path(os.path.realpath(candidate))
    if real != root_real and root_real not in real.parents:
        raise UnsafePathError(f"{candidate} is outside the state directory {root}")
    return real


def state_file_for(root: Path, experiment_id: str) -> Path:
    """The state file path for ``experiment_id`` (sanitised, checked to stay inside)."""
    stem = sanitize_experiment_id(experiment_id)
    if not stem or stem.startswith("."):
        # "." and ".." are no names; any other leading dot gives a hidden file, which scans skip.
        raise UnsafePathError(f"experiment id {experiment_id!r} gives no usable file name")
    if len(f"{stem}.json".encode()) > MAX_NAME_BYTES:
        raise UnsafePathError(f"experiment id {experiment_id!r} is too long for a file name")
    path = root / f"{stem}.json"
    ensure_inside(root, path)
    return path


def is_candidate_state_file(name: str) -> bool:
    """Whether a directory entry name may hold an experiment (by name only)."""
    return (
        name.endswith(".json")
        and not name.startswith(".")
        and name not in NON_EXPERIMENT_NAMES
    )


def is_candidate_study_dir(name: str) -> bool:
    """Whether a directory entry name may be a study folder (one holding ``manifest.json``)."""
    return (
        bool(name)
        and not name.startswith(".")
        and not name.endswith(".json")
        and name not in STUDY_ARTEFACT_DIRS
        and "/" not in name
        and "\0" not in name
    )


def study_manifest_name(folder: str) -> str:
    """The scan's name for a study folder's manifest, relative to the scanned directory."""
    return f"{folder}/{MANIFEST_NAME}"


def is_candidate_name(name: str) -> bool:
    """A top-level state file name, or a study manifest one folder down."""
    if "\0" in name:
        return False
    folder, sep, rest = name.partition("/")
    if not sep:
        return is_candidate_state_file(name)
    return rest == MANIFEST_NAME and is_candidate_study_dir(folder)


def key_of_name(name: str) -> str:
    """The entry key of a candidate name: the file stem, or a study's folder name."""
    folder, sep, _ = name.partition("/")
    return folder if sep else name[:-5]
