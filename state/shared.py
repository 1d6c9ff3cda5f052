"""Shared run state on disk: the key-value map an experiment's steps share (design §12).

Stored beside the experiment as ``.expwatch/shared/<key>.json``, so that other
programs (``expwatch kv``, a script, the inspector) can read it while the
experiment runs. The runner's coordinator is its only writer; it writes the
whole map atomically, so a reader sees one version or the next, never half.

The file is data like a state file: whoever can write the directory can put
anything there. It is read with a size limit, through the sidecar checks (no
symlink, a regular file), and refused with a one-line reason when it is not a
JSON object of JSON values for this experiment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from state.atomic import atomic_write_bytes
from state.paths import SIDECAR_DIR
from state.sidecar import read_regular, sidecar_dir

#: The most the shared map of one experiment may take, encoded (it travels in every write).
MAX_SHARED_BYTES = 4 << 20

FOLDER = "shared"


class SharedStateError(Exception):
    """The shared state file cannot be read (or written); the message says why in one line."""


def shared_path(root: Path, key: str) -> Path:
    return Path(root, SIDECAR_DIR, FOLDER, f"{key}.json")


def encode_shared(experiment_id: str, values: dict[str, Any]) -> bytes:
    """The file's bytes: the experiment's id (a later experiment reusing the key is told apart) and the map."""
    document = {"shared": 1, "experiment_id": experiment_id, "values": values}
    return json.dumps(document, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def read_shared(root: Path, key: str, experiment_id: str | None = None) -> dict[str, Any]:
    """The map stored for ``key`` ({} when nothing was shared yet); ``SharedStateError`` when unusable.

    With ``experiment_id`` a file written for another experiment of the same
    key is refused rather than shown as this one's.
    """
    path = shared_path(root, key)
    try:
        data, _ = read_regular(path, MAX_SHARED_BYTES, follow=False)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SharedStateError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_SHARED_BYTES:
        raise SharedStateError(f"{path}: over the {MAX_SHARED_BYTES // 2**20} MiB limit of shared state")
    try:
        document = json.loads(data, parse_constant=_refuse_constant, parse_float=finite_float)
    except (ValueError, RecursionError) as exc:
        raise SharedStateError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("values"), dict):
        raise SharedStateError(f"{path}: not a shared state file (no `values` object)")
    owner = document.get("experiment_id")
    if experiment_id is not None and owner != experiment_id:
        raise SharedStateError(f"{path}: written for experiment {owner!r}, not {experiment_id!r}")
    return document["values"]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def finite_float(text: str) -> float:
    """A JSON number as a float, refused when no float holds it (``1e999`` would read as infinity,
    which no JSON can say back)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of a float's range")
    return value


def write_shared(root: Path, key: str, experiment_id: str, values: dict[str, Any], *, durable: bool = True) -> None:
    """Replace the stored map atomically; ``SharedStateError`` when it is too big to store."""
    data = encode_shared(experiment_id, values)
    if len(data) > MAX_SHARED_BYTES:
        raise SharedStateError(
            f"{len(data) / 2**20:.1f} MiB of shared state is over the {MAX_SHARED_BYTES // 2**20} MiB limit"
        )
    folder = sidecar_dir(root, FOLDER)
    atomic_write_bytes(folder / f"{key}.json", data, tmp_dir=sidecar_dir(root, "tmp"), durable=durable)
