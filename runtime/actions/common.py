"""What every action shares: its refusal, the read-only gate, fresh reads, the verdict.

Actions never touch the caller's ``StateStore`` (its scan cache belongs to
the caller's thread): every read and write goes through a private store over
the same directory. Reads are allowed on a read-only store, so a plan can
always be made and shown; only execution is refused there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime

from runtime.liveness import LocalProbe
from state.detect import summarize
from state.journal import JournalAppender
from state.sidecar import UnsafeSidecarError
from state.paths import is_candidate_name, study_manifest_name
from state.record import ExperimentRecord, StateFormat
from state.store import ConflictError, Loaded, StateStore, StoreError
from state.verdict import RULE_EVIDENCE, RULE_LEM, LivenessProbe, StaleVerdict, judge_by_lem_rule, judge_with


class ActionRefused(StoreError):
    """The action is not allowed now; the message says why in one line."""


def refuse_read_only(store: StateStore, what: str) -> None:
    """Observer mode refuses before anything is read, written or launched."""
    if store.read_only:
        raise ActionRefused(f"read-only (observer) mode: refusing to {what}")


def read_only_refusal(store: StateStore) -> str | None:
    """The refusal a plan on a read-only store carries (the plan is still shown; whoever says it names the action)."""
    return "read-only (observer) mode: nothing can be changed" if store.read_only else None


def changed_since_plan(key: str) -> ConflictError:
    """The one answer to a file that moved between plan and execution: plan again."""
    return ConflictError(f"{key}.json changed since the plan was made; nothing was done, plan again")


def local_probe(probe: LivenessProbe | None) -> LivenessProbe:
    return probe if probe is not None else LocalProbe()


def private_store(store: StateStore, key: str | None = None) -> StateStore:
    """A store of our own over the same directory, knowing just ``key``."""
    private = StateStore(store.root, read_only=store.read_only, durable=store.durable)
    if not private.read_only:
        try:
            private.check_sidecars()  # a sidecar made a symlink refuses the action before anything is written
        except UnsafeSidecarError as exc:
            what = "the audit journal" if "journal" in str(exc) else "a sidecar"
            raise ActionRefused(f"{exc} ({what} cannot be used safely); nothing was done") from None
    if key is not None:
        private.refresh_key(key)
    return private


def resolve_key(store: StateStore, ident: str) -> str:
    """The file key for an id or a key, without touching ``store``'s cache.

    A key whose file exists resolves at once; anything else takes a scan of a
    private store (same rules as ``StateStore.resolve``).
    """
    for name in (f"{ident}.json", study_manifest_name(ident)):
        if ident and ident not in (".", "..") and is_candidate_name(name) and os.path.lexists(store.root / name):
            return ident
    private = StateStore(store.root, read_only=True)
    private.scan()
    return private.resolve(ident)


def load_experiment(store: StateStore, ident: str) -> tuple[Loaded, ExperimentRecord]:
    """Read one experiment fresh from disk, with its summary (a read: allowed when read-only)."""
    key = resolve_key(store, ident)
    loaded = private_store(store, key).load(key)
    record = summarize(loaded.key, loaded.path, loaded.version, loaded.format, loaded.model)
    return loaded, record


def fresh_records(store: StateStore) -> list[ExperimentRecord]:
    """Every readable experiment in the store's directory, from a scan of a private store."""
    private = private_store(store)
    private.scan()
    return private.records()


def verdict_for(
    record: ExperimentRecord,
    *,
    probe: LivenessProbe | None = None,
    now: datetime | None = None,
    rule: str = RULE_EVIDENCE,
) -> StaleVerdict:
    """Is anybody still running this experiment? (design §4)

    ``rule=RULE_LEM`` judges llenergymeasure files by llenergymeasure's own rule
    instead (other formats always by the evidence).
    """
    p = local_probe(probe)
    if rule == RULE_LEM and record.format in (StateFormat.LEM_V1, StateFormat.LEM_V2) and not (record.owner or record.workers):
        pid = record.legacy_pid
        return judge_by_lem_rule(pid, p.probe(pid) if pid is not None else None)
    return judge_with(record, p, now or datetime.now().astimezone())


@contextlib.contextmanager
def journal_opened(store: StateStore, what: str) -> Iterator[JournalAppender]:
    """The audit journal, opened before the action does anything.

    A journal that cannot be opened (a directory in its place, an immutable
    file, a full or read-only disk) refuses the action before it writes or
    launches: an action is journalled or not done at all.
    """
    try:
        appender = store.open_journal()
    except OSError as exc:
        raise ActionRefused(
            f"refusing to {what}: the audit journal {store.journal.path} cannot be written "
            f"({exc.strerror or exc}); nothing was done"
        ) from None
    with appender:
        yield appender


def journal_failure(exc: OSError) -> str:
    """What a result says when its journal line could not be written after the action was done."""
    return f"the audit journal line could not be written ({exc.strerror or exc})"
