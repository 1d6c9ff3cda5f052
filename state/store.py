"""The state store: scan a directory of experiment files, read them, write them safely.

A superset of llenergymeasure's ``StateManager``: incremental scans (only files
whose inode, mtime_ns or size changed are re-read), atomic and durable saves
under an advisory lock with a compare-and-swap on the file version, an index by
config hash, and an audit journal of every action. A read-only store refuses
every write and never creates anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from state.atomic import LockTimeout, atomic_write_bytes, exclusive_lock
from state.decoding import MAX_STATE_FILE_BYTES, BrokenStateFile, NotAnExperiment
from state.paths import (
    SIDECAR_DIR,
    UnsafePathError,
    ensure_inside,
    is_candidate_name,
    is_candidate_state_file,
    is_candidate_study_dir,
    key_of_name,
    sanitize_experiment_id,
    state_file_for,
    study_manifest_name,
    unsafe_id_reason,
)
from state.record import BrokenRecord, Entry, ExperimentRecord, FileVersion, StateFormat
from state.sidecar import (
    UnsafeSidecarError,
    file_kind,
    open_sidecar_file,
    read_regular,
    sidecar_dir,
    sidecar_dir_fd,
)
from state.text import printable
from state.scan_read import read_record
from state.transitions import ExperimentStatus

if TYPE_CHECKING:
    from state.journal import AuditJournal, JournalAppender
    from state.detect import StateModel
    from state.native import ExperimentDoc


class StoreError(Exception):
    """A store operation that could not be done; the message says why in one line."""


class ReadOnlyStoreError(StoreError):
    pass


class ConflictError(StoreError):
    """The file changed since it was read: the write was refused, nothing changed."""


class ExperimentNotFound(StoreError):
    pass


class BrokenExperimentError(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class Loaded:
    key: str
    path: Path
    format: StateFormat
    model: StateModel
    version: FileVersion
    data: bytes = field(default=b"", repr=False, compare=False)
    """The file's bytes as read: a write-back changes only what the model change changed in them."""


@dataclass(frozen=True, slots=True)
class Saved:
    path: Path
    version: FileVersion
    model: StateModel


@dataclass(frozen=True, slots=True)
class ScanDelta:
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


#: Marks a file name the store has never seen (``None`` in ``_sigs`` means "could not stat").
_UNSEEN = object()


#: Broken reasons that say the bytes could not be read (not that they were bad): retried every scan.
_READ_FAILURES = ("permission denied", "cannot read:")

#: A temp file this old (seconds) whose experiment is not locked was left by a killed writer.
STALE_TEMP_AGE_S = 60.0

SLOW_READ_S = 0.05
"""A file whose read and parse take longer than this is recorded in ``StateStore.slow_reads``."""


class StateStore:
    """One state directory."""

    def __init__(self, root: Path | str, *, read_only: bool = False, durable: bool = True):
        self.root = Path(root)
        self.read_only = read_only
        self.durable = durable
        self.entries: dict[str, Entry] = {}
        #: File name -> (inode, mtime_ns, size) as last read (of a symlink's target), for
        #: every candidate file seen, experiments or not; None where stat failed.
        self._sigs: dict[str, FileVersion | None] = {}
        #: Config hash -> the key of the one file with it, or a set of keys when several share it
        #: (most hashes have one file, and a one-element set costs 216 bytes).
        self._by_hash: dict[str, str | set[str]] = {}
        #: Keys of study folders (their file is ``<key>/manifest.json``, not ``<key>.json``).
        self._study_keys: set[str] = set()
        #: File name -> seconds its last read and parse took, for reads slower than
        #: ``SLOW_READ_S`` only (a watcher can re-read such files less often).
        self.slow_reads: dict[str, float] = {}
        #: What a scan makes of a file's bytes, in place of ``read_record``: ``expwatch list --json``
        #: keeps its own rows (see ``app.commands._list_json``). Raises as ``read_record`` does.
        self.reader: Callable[[str, Path, FileVersion, bytes], Entry] | None = None
        if not read_only:
            self.clean_stale_temp()

    # -- sidecars -------------------------------------------------------------
    @property
    def sidecar_dir(self) -> Path:
        return self.root / SIDECAR_DIR

    @property
    def journal(self) -> AuditJournal:
        from state.journal import AuditJournal  # only actions write it: a scan never loads it

        return AuditJournal(self.sidecar_dir / "journal.jsonl", root=self.root)

    @property
    def devices_dir(self) -> Path:
        return self.sidecar_dir / "devices"

    @property
    def logs_dir(self) -> Path:
        return self.sidecar_dir / "logs"

    def log_file(self, key: str, recorded: str | None) -> tuple[Path, str | None]:
        """Where an experiment's log goes, and a note when the recorded path was ignored.

        A state file is data: a ``log_path`` naming anything but a file in the
        state directory's log folder (``~/.bashrc``, ``/dev/zero``, a symlink
        out of the folder) would choose where a resume appends. Such a path is
        ignored for the default one, and the note says so (the dry run shows it).
        """
        folder = self.root.resolve() / SIDECAR_DIR / "logs"
        default = folder / f"{key}.log"
        if not recorded:
            return default, None
        try:
            real = ensure_inside(folder, Path(recorded))
        except (UnsafePathError, OSError, ValueError):
            real = None
        if real is not None and real.parent == folder:
            return real, None
        return default, f"recorded log path {printable(recorded)} is outside {folder}: ignored"

    def prepare_logs(self) -> Path:
        """The log folder, created if needed and checked to be a real directory (before a launch)."""
        return self._writable_sidecar("logs")

    def clean_stale_temp(self, *, now: float | None = None) -> list[str]:
        """Remove temp files a killed writer left in the sidecar temp folder; the names removed.

        A save's temp file lives for milliseconds under the experiment's lock,
        so one older than ``STALE_TEMP_AGE_S`` whose experiment is not locked
        now belongs to nobody. Anything odd (a symlinked folder, a file that
        is not a plain file) is left alone; failures are not errors.
        """
        now = time.time() if now is None else now
        removed: list[str] = []
        try:
            with sidecar_dir_fd(self.root, "tmp", create=False) as tmp_fd:
                for name in os.listdir(tmp_fd):
                    if not name.endswith(".tmp"):
                        continue
                    try:
                        st = os.lstat(name, dir_fd=tmp_fd)
                        if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < STALE_TEMP_AGE_S:
                            continue
                        with self._unless_locked(name.partition(".json.")[0] if ".json." in name else None):
                            os.unlink(name, dir_fd=tmp_fd)
                        removed.append(name)
                    except (OSError, LockTimeout):
                        continue
        except (OSError, UnsafePathError):
            pass
        return removed

    @contextlib.contextmanager
    def _unless_locked(self, key: str | None) -> Iterator[None]:
        """Hold ``key``'s lock without waiting (``LockTimeout`` if someone holds it); no key, no lock."""
        if key is None:
            yield
            return
        try:
            fd = open_sidecar_file(self.root, ("locks",), f"{key}.lock", os.O_RDWR)
        except FileNotFoundError:
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockTimeout(f"{key} is locked") from None
            yield
        finally:
            os.close(fd)

    def check_sidecars(self) -> None:
        """Raise ``UnsafeSidecarError`` if a sidecar folder or the journal is not what it should be.

        Creates nothing: actions call it before their first write, so a
        journal made a symlink stops a mark-stale before the state file
        changes, not after.
        """
        for parts in ((), ("locks",), ("tmp",), ("logs",)):
            try:
                with sidecar_dir_fd(self.root, *parts, create=False):
                    pass
            except FileNotFoundError:
                continue
        try:
            os.close(open_sidecar_file(self.root, (), "journal.jsonl", os.O_RDONLY))
        except FileNotFoundError:
            pass

    def _writable_sidecar(self, name: str) -> Path:
        """A sidecar folder, created if needed, checked to be a real directory (never a symlink)."""
        self._refuse_if_read_only(f"create {name}")
        return sidecar_dir(self.root, name) if name else sidecar_dir(self.root)

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(f"read-only (observer) mode: refusing to {what}")

    # -- scanning -------------------------------------------------------------
    def scan(self) -> ScanDelta:
        """Bring ``entries`` up to date with the directory; re-read only changed files.

        A file counts as unchanged while its (inode, mtime_ns, size) are; atomic
        replaces give a new inode, in-place writes a new mtime or size. The
        unchanged path costs one ``lstat`` relative to an open directory fd and
        a tuple compare per file, so a reconciliation scan of a large directory
        stays cheap.
        """
        try:
            dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            gone = list(self.entries)
            for key in gone:
                self._drop(key)
            self._sigs.clear()
            return ScanDelta(removed=tuple(sorted(gone)))
        todo: list[tuple[str, os.stat_result | None]] = []
        try:
            names = os.listdir(dir_fd)
            sigs = self._sigs
            known = sigs.get
            lstat = os.lstat
            queue = todo.append
            hits = 0
            studies = []
            for name in names:
                sig = known(name, _UNSEEN)
                if sig is _UNSEEN:
                    if is_candidate_state_file(name):
                        queue((name, None))
                    elif is_candidate_study_dir(name):
                        studies.append(study_manifest_name(name))
                    continue
                hits += 1
                try:
                    st = lstat(name, dir_fd=dir_fd)
                except OSError:
                    queue((name, None))
                    continue
                if sig != FileVersion.of(st):
                    queue((name, st))
            # Study folders one level down: one lstat of ``<folder>/manifest.json`` each.
            for name in studies:
                try:
                    st = lstat(name, dir_fd=dir_fd)
                except OSError:
                    if known(name, _UNSEEN) is not _UNSEEN:
                        queue((name, None))
                    continue
                hits += name in sigs
                names.append(name)
                if known(name, _UNSEEN) != FileVersion.of(st):
                    queue((name, st))
            # Every known name was listed (names are unique): nothing is gone, skip the set difference.
            vanished = sigs.keys() - set(names) if hits != len(sigs) else set()
            added: list[str] = []
            changed: list[str] = []
            removed: list[str] = []
            outcomes = {"added": added, "changed": changed, "removed": removed}
            # Plain files not seen before (every file, in a first scan) are read in one loop;
            # then the changed ones and study manifests, each after its own check.
            self._read_new(dir_fd, [name for name, st in todo if st is None and "/" not in name], outcomes)
            for name, st in todo:
                if st is None and "/" not in name:
                    continue
                outcome = self._refresh_one(name, st)
                if outcome is not None:
                    outcomes[outcome].append(key_of_name(name))
        finally:
            os.close(dir_fd)
        gone = []
        for name in vanished:
            key = key_of_name(name)
            if key in self.entries:
                gone.append(key)
            self._drop(key)
        return ScanDelta(tuple(added), tuple(changed), tuple(removed + sorted(gone)))

    def candidate_names(self) -> list[str]:
        """Every name a scan would read, sorted: state files, and study manifests one folder down.

        The first scan lists the directory before its first rows, in a thread that competes
        with the first frame for the GIL: two predicate calls per name made the listing of
        10,000 names cost 2.5 times the ``listdir``. ``is_candidate_state_file`` and
        ``is_candidate_study_dir`` are applied here as comprehensions (the ``.json`` names
        first, then only the others as possible study folders, one ``lstat`` each).
        """
        from state.paths import NON_EXPERIMENT_NAMES

        try:
            listed = os.listdir(self.root)
        except OSError:
            return []
        json_names = [n for n in listed if n.endswith(".json")]
        names = [n for n in json_names if n[0] != "." and n not in NON_EXPERIMENT_NAMES]
        if len(json_names) < len(listed):
            root = self.root
            for name in listed:
                if not name.endswith(".json") and is_candidate_study_dir(name):
                    manifest = study_manifest_name(name)
                    if os.path.lexists(root / manifest):
                        names.append(manifest)
        names.sort()
        return names

    def refresh_key(self, key: str) -> ScanDelta:
        """Re-read the one entry ``key`` names, whether a state file or a study folder."""
        return self.refresh([f"{key}.json", study_manifest_name(key)])

    def refresh(self, names: Iterable[str]) -> ScanDelta:
        """Re-stat just these file names (watcher hints) and re-read the changed ones."""
        added: list[str] = []
        changed: list[str] = []
        removed: list[str] = []
        outcomes = {"added": added, "changed": changed, "removed": removed}
        new: list[str] = []
        for name in set(names):
            if not is_candidate_name(name):
                continue
            if "/" in name or name in self._sigs:
                outcome = self._refresh_one(name, None)  # known: a stat tells whether to read again
                if outcome is not None:
                    outcomes[outcome].append(key_of_name(name))
            else:
                new.append(name)
        if new:
            try:
                dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                for name in new:
                    outcome = self._refresh_one(name, None)
                    if outcome is not None:
                        outcomes[outcome].append(key_of_name(name))
            else:
                try:
                    self._read_new(dir_fd, new, outcomes)
                finally:
                    os.close(dir_fd)
        return ScanDelta(tuple(added), tuple(changed), tuple(removed))

    def _read_new(self, dir_fd: int, names: list[str], outcomes: dict[str, list[str]]) -> None:
        """Plain files not seen before, read through the open directory with no ``lstat`` first, their
        keys added to ``outcomes``.

        The open refuses a symlink and ``fstat`` vouches for a regular file, whose
        version then belongs to the bytes read. Anything else (a symlink, a FIFO,
        a file gone or unreadable, a key a study folder holds) goes through
        ``_refresh_one``, which says what it is. One loop for them all: a cold scan
        of 10,000 files paid an ``lstat`` and a path-built open each, then a call per
        file and ``_set``'s lookups (3.5 µs a file over its reads).
        """
        entries = self.entries
        sigs = self._sigs
        added = outcomes["added"]
        decoded = self._decoded
        root = self.root
        clock = time.perf_counter
        for name in names:
            key = name[:-5]  # key_of_name of a plain "<key>.json"
            data = None
            if key not in entries:
                started = clock()
                try:
                    data, st = read_regular(name, MAX_STATE_FILE_BYTES, follow=False, dir_fd=dir_fd)
                except OSError:
                    pass
            if data is None or len(data) > MAX_STATE_FILE_BYTES:
                outcome = self._refresh_one(name, None)
                if outcome is not None:
                    outcomes[outcome].append(key)
                continue
            sig = FileVersion(st.st_ino, st.st_mtime_ns, st.st_size)  # FileVersion.of, without its call
            entry = decoded(key, child_path(root, name), sig, data)
            cost = clock() - started
            if cost > SLOW_READ_S:
                self.slow_reads[name] = cost
            sigs[name] = sig
            if entry is not None:
                entries[key] = entry
                added.append(key)
                if isinstance(entry, ExperimentRecord) and entry.config_hash:
                    self._index(key, entry.config_hash)

    def _refresh_one(self, name: str, lst: os.stat_result | None) -> str | None:
        """Re-check one file given its ``lstat`` (None: stat it here); re-read it if it changed.

        Whatever goes wrong with this one file becomes its broken reason: no single
        input stops a scan.
        """
        try:
            return self._refresh_checked(name, lst)
        except Exception as exc:  # noqa: BLE001
            key = key_of_name(name)
            return self._set(key, BrokenRecord(key, self.root / name, unexpected_reason(exc)), None, name)

    def _refresh_checked(self, name: str, lst: os.stat_result | None) -> str | None:
        key = key_of_name(name)
        path = self.root / name
        if lst is None:
            try:
                lst = os.lstat(path)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError) and exc.errno != errno.ENAMETOOLONG:
                    return self._set(key, BrokenRecord(key, path, f"cannot stat: {exc.strerror}"), None, name)
                # Missing, or a name too long to exist on this filesystem (asked for by id).
                existed = key in self.entries
                if self._name_of(key) == name:
                    self._drop(key)
                else:
                    self._sigs.pop(name, None)
                return "removed" if existed and key not in self.entries else None
        if "/" in name and not _inside(self.root, path):
            return self._set(key, BrokenRecord(key, path, "study folder points outside the directory"), FileVersion.of(lst), name)
        if stat.S_ISLNK(lst.st_mode):
            link_sig = FileVersion.of(lst)
            try:
                ensure_inside(self.root, path)
                lst = os.stat(path)
            except UnsafePathError:
                return self._set(key, BrokenRecord(key, path, "symlink points outside the state directory"), link_sig, name)
            except OSError as exc:
                reason = "symlink loop" if exc.errno == errno.ELOOP else f"dangling symlink ({exc.strerror})"
                return self._set(key, BrokenRecord(key, path, reason), link_sig, name)
        sig = FileVersion.of(lst)
        if self._sigs.get(name, _UNSEEN) == sig:
            return None
        started = time.perf_counter()
        entry = self._read_entry(key, path, lst, sig)
        cost = time.perf_counter() - started
        if cost > SLOW_READ_S:
            self.slow_reads[name] = cost
        elif self.slow_reads:
            self.slow_reads.pop(name, None)
        if isinstance(entry, BrokenRecord) and entry.reason.startswith(_READ_FAILURES):
            # A chmod changes neither inode, mtime nor size: remember no version, so the
            # next scan (or hint) tries again and a file made readable comes back.
            return self._set(key, entry, None, name)
        return self._set(key, entry, sig, name)

    def _read_entry(self, key: str, path: Path, st: os.stat_result, sig: FileVersion) -> Entry | None:
        if not stat.S_ISREG(st.st_mode):
            return BrokenRecord(key, path, f"not a regular file ({file_kind(st.st_mode)})", sig)
        if st.st_size > MAX_STATE_FILE_BYTES:
            return BrokenRecord(key, path, f"file larger than {MAX_STATE_FILE_BYTES // (1024 * 1024)} MiB ({st.st_size} bytes)", sig)
        try:
            data, _ = read_limited(path)
        except PermissionError:
            return BrokenRecord(key, path, "permission denied", sig)
        except OSError as exc:
            return BrokenRecord(key, path, f"cannot read: {exc.strerror}", sig)
        return self._decoded(key, path, sig, data)

    def _decoded(self, key: str, path: Path, sig: FileVersion, data: bytes) -> Entry | None:
        """The entry a file's bytes give: its row, a broken row saying why, or None (not an experiment)."""
        try:
            return (self.reader or read_record)(key, path, sig, data)
        except NotAnExperiment:
            return None
        except BrokenStateFile as exc:
            return BrokenRecord(key, path, exc.reason, sig)
        except Exception as exc:  # noqa: BLE001 - one input never stops a scan
            return BrokenRecord(key, path, unexpected_reason(exc), sig)

    def _name_of(self, key: str) -> str:
        return study_manifest_name(key) if key in self._study_keys else f"{key}.json"

    def _set(self, key: str, entry: Entry | None, sig: FileVersion | None, name: str) -> str | None:
        existed = key in self.entries
        old = self.entries.get(key)
        if entry is None:
            if existed:
                self._drop(key)
            self._sigs[name] = sig
            return "removed" if existed else None
        if existed and self._name_of(key) != name:
            # A study folder and a file with the same stem: the first one seen keeps the key.
            self._sigs[name] = sig
            return None
        if "/" in name:
            self._study_keys.add(key)
        self._sigs[name] = sig
        if old is not None:
            self._unindex(key, old)
        self.entries[key] = entry
        if isinstance(entry, ExperimentRecord) and entry.config_hash:
            self._index(key, entry.config_hash)
        if not existed:
            return "added"
        return "changed" if old != entry else None

    def _index(self, key: str, config_hash: str) -> None:
        # One key is kept as itself (most hashes have one file); a shared hash (the cycles of
        # one llenergymeasure config) gets a set, so adding stays O(1) however many share it.
        keys = self._by_hash.get(config_hash)
        if keys is None:
            self._by_hash[config_hash] = key
        elif isinstance(keys, set):
            keys.add(key)
        elif keys != key:
            self._by_hash[config_hash] = {keys, key}

    def _unindex(self, key: str, entry: Entry) -> None:
        if isinstance(entry, ExperimentRecord) and entry.config_hash:
            keys = self._by_hash.get(entry.config_hash)
            if keys == key:
                del self._by_hash[entry.config_hash]
            elif isinstance(keys, set):
                keys.discard(key)
                if not keys:
                    del self._by_hash[entry.config_hash]

    def _drop(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        self._sigs.pop(self._name_of(key), None)
        self._study_keys.discard(key)
        if entry is not None:
            self._unindex(key, entry)

    # -- reading --------------------------------------------------------------
    def records(self) -> list[ExperimentRecord]:
        return [e for e in self.entries.values() if isinstance(e, ExperimentRecord)]

    def resolve(self, ident: str) -> str:
        """File key for an experiment id or a file stem; never trusts ``ident`` as a path.

        Keys come only from directory entries, so whatever ``ident`` holds the
        result names a file directly inside the state directory. A miss
        rescans once: the file may have appeared since the last scan.
        """
        key = self._lookup(ident)
        if key is None:
            # Cheap first: the file named after the key or the sanitised id.
            self.refresh({f"{ident}.json", f"{sanitize_experiment_id(ident)}.json", study_manifest_name(ident)})
            key = self._lookup(ident)
        if key is None:
            self.scan()
            key = self._lookup(ident)
        if key is None:
            raise ExperimentNotFound(f"no experiment {ident!r} in {self.root}")
        return key

    def _lookup(self, ident: str) -> str | None:
        if ident in self.entries:
            return ident
        matches = [k for k, e in self.entries.items() if isinstance(e, ExperimentRecord) and e.experiment_id == ident]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise StoreError(f"experiment id {ident!r} is claimed by several files: {', '.join(sorted(matches))}")
        stem = sanitize_experiment_id(ident)
        if stem in self.entries:
            return stem
        return None

    def path_for(self, key: str) -> Path:
        if "/" in key or "\0" in key or key in ("", ".", ".."):
            raise UnsafePathError(f"bad key {key!r}")
        name = self._name_of(key)
        if key not in self.entries and not os.path.lexists(self.root / name):
            # A store that has not scanned yet: a study folder of that name, if there is one.
            study = study_manifest_name(key)
            if os.path.lexists(self.root / study):
                name = study
        path = self.root / name
        ensure_inside(self.root, path)
        return path

    def load(self, ident: str) -> Loaded:
        """Read an experiment fresh from disk (not from the scan cache)."""
        key = self.resolve(ident)
        path = self.root / self._name_of(key)
        try:
            path = self.path_for(key)
            data, st = read_limited(path)
        except FileNotFoundError:
            raise ExperimentNotFound(f"no experiment {ident!r} in {self.root}") from None
        except OSError as exc:  # its own words, not Python's "[Errno 22] ...: 'path'"
            raise BrokenExperimentError(f"{path.name}: {exc.strerror or exc}") from None
        except UnsafePathError as exc:
            raise BrokenExperimentError(f"{path.name}: {exc}") from None
        from state.detect import parse_state  # the pydantic models: loaded for the first file loaded

        try:
            fmt, model = parse_state(data)
        except (BrokenStateFile, NotAnExperiment) as exc:
            raise BrokenExperimentError(f"{path.name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a reader bug is this file's problem, said in one line
            raise BrokenExperimentError(f"{path.name}: {unexpected_reason(exc)}") from None
        return Loaded(key, path, fmt, model, FileVersion.of(st), data)

    def find_incomplete(self) -> list[ExperimentRecord]:
        """Experiments not yet aggregated (llenergymeasure's definition)."""
        return [r for r in self.records() if r.status != ExperimentStatus.AGGREGATED.value]

    def keys_with_config_hash(self, config_hash: str) -> list[str]:
        """The keys of the experiments read with this config hash, sorted."""
        keys = self._by_hash.get(config_hash, ())
        return sorted((keys,) if isinstance(keys, str) else keys)

    def find_by_config_hash(self, config_hash: str) -> ExperimentRecord | None:
        """An incomplete experiment with this config hash, through the index."""
        for key in self.keys_with_config_hash(config_hash):
            entry = self.entries.get(key)
            if isinstance(entry, ExperimentRecord) and entry.status != ExperimentStatus.AGGREGATED.value:
                return entry
        return None

    # -- writing --------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str, *, timeout: float | None = 10.0) -> Iterator[None]:
        """The advisory per-experiment lock (a sidecar file, outside the watched set)."""
        self._refuse_if_read_only(f"lock {key}")
        name = f"{key}.lock"
        with exclusive_lock(
            self.sidecar_dir / "locks" / name,
            timeout=timeout,
            open_fd=lambda: open_sidecar_file(self.root, ("locks",), name, os.O_RDWR | os.O_CREAT, 0o666),
        ):
            yield

    def _write(
        self,
        path: Path,
        model: StateModel,
        *,
        over: Loaded | None = None,
        encode: Callable[[ExperimentDoc], list[bytes]] | None = None,
    ) -> Saved:
        """Write ``model``; over a file read as ``over``, as a write-back that keeps every other value.

        ``encode`` gives an expwatch document's bytes, in parts written one after
        another, instead of ``to_json`` (the runner's, which keeps its finished
        runs' JSON between writes); together they must be the same bytes.
        """
        from state.lem_study import StudyManifest
        from state.native import ExperimentDoc
        from state.writeback import UnpreservableValue, write_back

        if isinstance(model, ExperimentDoc):
            model = model.model_copy(update={"last_updated": datetime.now().astimezone()})
        elif isinstance(model, StudyManifest):
            pass  # llenergymeasure's manifest has no such field: written as given
        else:
            model = model.model_copy(update={"last_updated": datetime.now()})
        try:
            if over is not None and over.data:
                data = [write_back(over.data, over.model, model)]
            elif encode is not None and isinstance(model, ExperimentDoc):
                data = encode(model)
            else:
                data = [model.to_json().encode("utf-8")]
        except (UnpreservableValue, ValueError) as exc:
            # pydantic's serialisation error and UnicodeEncodeError are ValueErrors too.
            raise StoreError(f"{path.name}: refusing to write a value that would not read back the same "
                             f"({' '.join(str(exc).split())[:300]}); not written") from None
        size = sum(map(len, data))
        if size > MAX_STATE_FILE_BYTES:
            # Readers would show it as broken: keep the last readable version instead.
            raise StoreError(
                f"{path.name}: {size / 2**20:.1f} MiB is over the "
                f"{MAX_STATE_FILE_BYTES // 2**20} MiB state file limit; not written"
            )
        atomic_write_bytes(path, data, tmp_dir=self._writable_sidecar("tmp"), durable=self.durable)
        return Saved(path, FileVersion.of(os.stat(path)), model)

    _ANY = object()

    def save(
        self,
        model: StateModel,
        *,
        expected: FileVersion | None | object = _ANY,
        key: str | None = None,
        encode: Callable[[ExperimentDoc], list[bytes]] | None = None,
    ) -> Saved:
        """Write ``model`` atomically under the lock.

        ``expected`` is the version the caller read (compare-and-swap): if the
        file is not at that version any more the write is refused with
        ``ConflictError``. ``expected=None`` means the file must not exist yet.
        ``encode``: see ``_write``.
        """
        self._refuse_if_read_only(f"write {model.experiment_id}")
        reason = unsafe_id_reason(model.experiment_id)
        if reason:
            raise UnsafePathError(f"refusing to write {model.experiment_id!r}: {reason}")
        path = self.path_for(key) if key else state_file_for(self.root, model.experiment_id)
        key = key_of_name(str(path.relative_to(self.root)))
        with self.lock(key):
            self._check_version(path, expected)
            saved = self._write(path, model, encode=encode)
        return saved

    def _check_version(self, path: Path, expected: FileVersion | None | object) -> None:
        if expected is self._ANY:
            return
        try:
            current: FileVersion | None = FileVersion.of(os.stat(path))
        except FileNotFoundError:
            current = None
        if expected is None and current is not None:
            raise ConflictError(f"{path.name} already exists")
        if expected is not None and current != expected:
            raise ConflictError(f"{path.name} changed since it was read; reload and try again")

    def create(self, model: StateModel, *, encode: Callable[[ExperimentDoc], list[bytes]] | None = None) -> Saved:
        """Write a new experiment; refuses if its file already exists."""
        return self.save(model, expected=None, encode=encode)

    def update(
        self,
        ident: str,
        change: Callable[[StateModel], StateModel],
        *,
        expected: FileVersion | None = None,
    ) -> tuple[Loaded, Saved]:
        """Read-modify-write under the lock: no update from another process is lost."""
        self._refuse_if_read_only(f"update {ident}")
        key = self.resolve(ident)
        with self.lock(key):
            before = self.load(key)
            if expected is not None and before.version != expected:
                raise ConflictError(f"{before.path.name} changed since it was read; reload and try again")
            new_model = change(before.model)
            self._check_version(before.path, before.version)
            saved = self._write(before.path, new_model, over=before)
        return before, saved

    def open_journal(self) -> JournalAppender:
        """The audit journal opened for appending (``OSError`` if it cannot be: nothing was written)."""
        self._refuse_if_read_only("write the audit journal")
        self._writable_sidecar("")
        return self.journal.open()

    def journal_action(
        self,
        before: Loaded,
        saved: Saved,
        *,
        action: str,
        reason: str | None,
        journal: JournalAppender | None = None,
    ) -> None:
        """One line for a transition; into ``journal`` when the action opened it beforehand."""
        from state.journal import journal_id
        from state.mutations import current_status

        fields = {
            "experiment": journal_id(before.model, before.path),
            "action": action,
            "from_status": current_status(before.model).value,
            "to_status": current_status(saved.model).value,
            "reason": reason,
        }
        if journal is not None:
            journal.append(**fields)
        else:
            self._writable_sidecar("")
            self.journal.append(**fields)


def _inside(root: Path, path: Path) -> bool:
    try:
        ensure_inside(root, path)
    except UnsafePathError:
        return False
    return True


def unexpected_reason(exc: BaseException) -> str:
    """The broken reason for an exception nobody expected from a reader: type and message, one line."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:299] + "…"
    return f"unreadable ({type(exc).__name__}: {text})" if text else f"unreadable ({type(exc).__name__})"


_CHILD = getattr(Path, "_make_child_relpath", None)


def child_path(root: Path, name: str) -> Path:
    """``root / name`` for a plain file name (no separator), at a fifth of the cost where this
    Python's pathlib offers it: the name needs no parsing (a cold scan built 10,000 of them)."""
    return _CHILD(root, name) if _CHILD is not None else root / name


def read_limited(path: Path, limit: int = MAX_STATE_FILE_BYTES) -> tuple[bytes, os.stat_result]:
    """Read at most the size limit (+1, so oversize shows) and the stat of what was read.

    The version comes from ``fstat`` on the open file, so it always belongs
    to the bytes returned even if the file is replaced meanwhile. Opening
    non-blocking keeps a FIFO that appears in a race from hanging the reader.
    """
    return read_regular(path, limit)


__all__ = [
    "BrokenExperimentError",
    "ConflictError",
    "ExperimentNotFound",
    "Loaded",
    "ReadOnlyStoreError",
    "Saved",
    "ScanDelta",
    "StateStore",
    "StoreError",
    "UnsafeSidecarError",
]
