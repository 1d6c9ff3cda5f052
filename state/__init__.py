"""Experiment state: models, file formats, the store, transitions, the stale verdict.

Imports no Textual: the CLI, the runner and the dashboard all stand on it. The names
below are loaded on first use (PEP 562), so importing one light submodule
(``state.record``, ``state.paths``) does not load the pydantic models and parsers.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "state.detect": ("BrokenStateFile", "parse_state"),
    "state.hashing": ("compute_config_hash",),
    "state.lem": ("STALE_MESSAGE", "LemExperimentState", "LemV2ExperimentState", "ProcessProgress"),
    "state.native": ("SCHEMA", "ExperimentDoc", "OwnerIdentity"),
    "state.paths": ("UnsafePathError", "sanitize_experiment_id"),
    "state.record": ("BrokenRecord", "Entry", "ExperimentRecord", "FileVersion", "StateFormat"),
    "state.store": ("ConflictError", "ExperimentNotFound", "ReadOnlyStoreError", "StateStore", "StoreError"),
    "state.transitions": (
        "ExperimentPhase",
        "ExperimentStatus",
        "InvalidStateTransitionError",
        "ProcessStatus",
        "can_transition_to",
        "phase_to_status",
    ),
    "state.verdict": ("Liveness", "StaleVerdict", "judge_record"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str):
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'state' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME_OF])


__all__ = sorted(_HOME_OF)
