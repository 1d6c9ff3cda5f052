"""Experiment state: models, file formats, the store, transitions, the stale verdict.

Imports no Textual: the CLI, the runner and the dashboard all stand on it.
"""

from state.detect import BrokenStateFile, parse_state
from state.hashing import compute_config_hash
from state.lem import STALE_MESSAGE, LemExperimentState, LemV2ExperimentState, ProcessProgress
from state.native import SCHEMA, ExperimentDoc, OwnerIdentity
from state.paths import UnsafePathError, sanitize_experiment_id
from state.record import BrokenRecord, Entry, ExperimentRecord, FileVersion, StateFormat
from state.store import (
    ConflictError,
    ExperimentNotFound,
    ReadOnlyStoreError,
    StateStore,
    StoreError,
)
from state.transitions import (
    ExperimentPhase,
    ExperimentStatus,
    InvalidStateTransitionError,
    ProcessStatus,
    can_transition_to,
    phase_to_status,
)
from state.verdict import Liveness, StaleVerdict, judge_record

__all__ = [
    "BrokenRecord",
    "BrokenStateFile",
    "ConflictError",
    "Entry",
    "ExperimentDoc",
    "ExperimentNotFound",
    "ExperimentPhase",
    "ExperimentRecord",
    "ExperimentStatus",
    "FileVersion",
    "InvalidStateTransitionError",
    "LemExperimentState",
    "LemV2ExperimentState",
    "Liveness",
    "OwnerIdentity",
    "ProcessProgress",
    "ProcessStatus",
    "ReadOnlyStoreError",
    "SCHEMA",
    "STALE_MESSAGE",
    "StaleVerdict",
    "StateFormat",
    "StateStore",
    "StoreError",
    "UnsafePathError",
    "can_transition_to",
    "compute_config_hash",
    "judge_record",
    "parse_state",
    "phase_to_status",
    "sanitize_experiment_id",
]
