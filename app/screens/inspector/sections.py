"""The inspector's tabs, and which of them a given file has.

A broken file has only its Overview and its raw bytes; an llenergymeasure
file has no steps or run details; an expwatch file has everything; an MLtraq
experiment has no processes and no history (MLtraq records neither).
"""

from __future__ import annotations

from enum import Enum

from state.inspection import Snapshot
from state.lem import LemExperimentState
from state.lem_study import StudyManifest
from state.mltraq.experiment import MltraqExperiment
from state.native import ExperimentDoc


class Section(str, Enum):
    """The inspector's tabs (the value is the TabPane id)."""

    OVERVIEW = "overview"
    PROCESSES = "processes"
    RUNS = "runs"
    RUN = "run"
    STEPS = "steps"
    HISTORY = "history"
    RAW = "raw"


SECTION_TITLES = {
    Section.OVERVIEW: "Overview",
    Section.PROCESSES: "Processes",
    Section.RUNS: "Runs",
    Section.RUN: "Run",
    Section.STEPS: "Steps",
    Section.HISTORY: "History",
    Section.RAW: "Raw",
}


def visible_sections(snap: Snapshot) -> set[Section]:
    if snap.model is None:
        return {Section.OVERVIEW, Section.RAW}
    if isinstance(snap.model, MltraqExperiment):
        return {Section.OVERVIEW, Section.RUNS, Section.RUN, Section.STEPS, Section.RAW}
    shown = {Section.OVERVIEW, Section.HISTORY, Section.RAW}
    if isinstance(snap.model, ExperimentDoc):
        return shown | {Section.PROCESSES, Section.RUNS, Section.RUN, Section.STEPS}
    if isinstance(snap.model, StudyManifest):
        shown.add(Section.PROCESSES)
    if isinstance(snap.model, LemExperimentState):
        shown.add(Section.PROCESSES)
        if snap.model.completed_runs or snap.model.failed_runs:
            shown.add(Section.RUNS)
    return shown
