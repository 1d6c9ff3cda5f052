"""Study files: the Python modules that define an experiment, and the ``run`` their steps receive.

A study is a plain module; the minimal one names ``steps`` (functions taking a
``run``) and optionally ``grid`` (one run per combination), ``config``,
``name``, ``fields`` and ``options``. A richer form is a module-level
``study = Study(...)`` object. Nothing here imports pydantic or the state
layer: worker processes load this module and should start fast.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.runner.attrs import ItemAttributes
from runtime.runner.shared import SharedMap

#: ``options`` keys a study may set; the command line overrides them.
KNOWN_OPTIONS = frozenset({"processes", "gpus", "fail_fast", "grace", "heartbeat", "workcell"})


class StudyError(Exception):
    """The study file cannot be used; the message says why in one line."""


class AttrDict(ItemAttributes, dict):
    """A dict whose keys are also attributes: ``run.fields.x`` and ``run.fields["x"]``."""

    __slots__ = ()


class FrozenAttrDict(AttrDict):
    """``config`` and ``params``: readable like ``AttrDict``, but steps cannot change them."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("run.config and run.params are fixed for the run; store results in run.fields")

    __setitem__ = __delitem__ = __setattr__ = __delattr__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]


class Run:
    """What a step receives: one point of the grid, with room for its results.

    ``config`` is fixed for the experiment, ``params`` for the run; ``fields``
    and ``state`` are persisted in the state file; ``vars`` lives only in the
    worker process (handles, tensors, timers) and is never written anywhere;
    ``shared`` is the experiment's map that every run and worker sees
    (``runtime.runner.shared``; a private one for a run made by hand).
    """

    __slots__ = (
        "id_run", "index", "config", "params", "vars", "state", "fields", "exception",
        "gpu_id", "process_index", "experiment_id", "attempt", "devices", "current_step", "shared",
    )

    def __init__(
        self,
        *,
        id_run: str,
        index: int,
        params: Mapping[str, Any],
        config: Mapping[str, Any],
        gpu_id: int | None = None,
        process_index: int = 0,
        experiment_id: str = "",
        attempt: int = 1,
        devices: Mapping[str, Any] | None = None,
        shared: SharedMap | None = None,
    ):
        self.id_run = id_run
        self.index = index
        self.config = config if isinstance(config, FrozenAttrDict) else FrozenAttrDict(config)
        self.params = FrozenAttrDict(params)
        self.vars = AttrDict()
        self.state = AttrDict()
        self.fields = AttrDict()
        self.exception: BaseException | None = None
        self.gpu_id = gpu_id
        self.process_index = process_index
        self.experiment_id = experiment_id
        self.attempt = attempt
        self.devices: Mapping[str, Any] = devices if devices is not None else {}
        self.current_step: str | None = None
        self.shared = shared if shared is not None else SharedMap()

    def __repr__(self) -> str:
        return f"Run({self.id_run!r}, params={dict(self.params)!r})"


@dataclass
class Study:
    """The rich form of a study file: ``study = Study(steps=[...], grid={...}, ...)``."""

    steps: list[Callable[[Run], Any]]
    grid: Mapping[str, Iterable[Any]] | Iterable[Mapping[str, Any]] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def expand_grid(self) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
        """(the grid as recorded, the params of every run in order)."""
        return expand_grid(self.grid)

    def describe_steps(self) -> list[dict[str, Any]]:
        return [describe_step(step) for step in self.steps]


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"expwatch_study_{stem}_{digest}"


def load_study(path: Path | str) -> Study:
    """Import a study file and read its definition; ``StudyError`` says what is wrong."""
    path = Path(path).resolve()
    if not path.is_file():
        raise StudyError(f"study file {path} does not exist")
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StudyError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise StudyError(f"importing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    return study_from_module(module, path)


def study_from_module(module: Any, path: Path) -> Study:
    rich = getattr(module, "study", None)
    if isinstance(rich, Study):
        study = rich
        study.path = path
    else:
        if not hasattr(module, "steps"):
            raise StudyError(f"{path.name} defines no `steps` (a list of functions taking a run)")
        study = Study(
            steps=module.steps,
            grid=getattr(module, "grid", None),
            config=getattr(module, "config", None) or {},
            name=getattr(module, "name", None),
            fields=getattr(module, "fields", None) or {},
            options=getattr(module, "options", None) or {},
            path=path,
        )
    _check(study, path)
    return study


def _check(study: Study, path: Path) -> None:
    steps = study.steps
    if callable(steps):
        study.steps = steps = [steps]
    if not isinstance(steps, (list, tuple)) or not steps:
        raise StudyError(f"{path.name}: `steps` must be a non-empty list of functions")
    for step in steps:
        if not callable(step):
            raise StudyError(f"{path.name}: step {step!r} is not callable")
    study.steps = list(steps)
    if not isinstance(study.config, Mapping):
        raise StudyError(f"{path.name}: `config` must be a dict")
    if not isinstance(study.fields, Mapping):
        raise StudyError(f"{path.name}: `fields` must be a dict")
    if not isinstance(study.options, Mapping):
        raise StudyError(f"{path.name}: `options` must be a dict")
    unknown = set(study.options) - KNOWN_OPTIONS
    if unknown:
        raise StudyError(
            f"{path.name}: unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(KNOWN_OPTIONS))})"
        )
    for what, value in (("config", study.config), ("fields", study.fields)):
        problem = unstorable_json(dict(value))
        if problem:
            raise StudyError(f"{path.name}: `{what}` cannot be stored as JSON exactly ({problem})")
    if study.name is not None and not isinstance(study.name, str):
        raise StudyError(f"{path.name}: `name` must be a string")


#: A run record takes about 300 bytes (compact JSON) before its fields: 150,000 runs come to about
#: 45 MiB, leaving room under the readers' 64 MiB size limit for the fields the steps record.
MAX_RUNS = 150_000


class GridTooLarge(StudyError):
    """More runs than one state file holds, found before the runs were built."""


def expand_grid(
    grid: Mapping[str, Iterable[Any]] | Iterable[Mapping[str, Any]] | None,
    *,
    limit: int = MAX_RUNS,
) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """One params dict per run: the cartesian product of a dict grid, in key order.

    A list of dicts is taken as the runs themselves; no grid means one run
    with no params. Sizes are counted before anything is built, and no axis
    or list is read past ``limit`` + 1 items, so a huge grid or an endless
    iterator (``itertools.count()``) is refused at once, in bounded memory.
    Every value must survive JSON exactly, because a resumed run gets its
    params back from the state file.
    """
    if grid is None:
        return {}, [{}]
    if isinstance(grid, Mapping):
        axes: dict[str, list[Any]] = {}
        for key, values in grid.items():
            if not isinstance(key, str):
                raise StudyError(f"grid key {key!r} is not a string")
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                values = [values]
            known = _known_length(values)
            if known is not None and known > limit:
                raise GridTooLarge(f"axis {key!r} has {known:,} values")
            axes[key] = list(itertools.islice(values, limit + 1))
            if len(axes[key]) > limit:
                raise GridTooLarge(f"axis {key!r} has more than {limit:,} values, or never ends")
            if not axes[key]:
                raise StudyError(f"grid axis {key!r} has no values")
        total = math.prod(len(values) for values in axes.values())
        if total > limit:
            raise GridTooLarge(f"{total:,} runs")
        names = list(axes)
        runs = [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]
    else:
        axes = {}
        runs = []
        for item in itertools.islice(grid, limit + 1):
            if not isinstance(item, Mapping):
                raise StudyError(f"grid entry {item!r} is not a dict of params")
            runs.append(dict(item))
        if len(runs) > limit:
            raise GridTooLarge(f"it lists more than {limit:,} runs, or never ends")
        if not runs:
            raise StudyError("grid lists no runs")
    for key, values in axes.items():
        problem = unstorable_json(values)
        if problem:
            raise StudyError(f"grid axis {key!r} holds values that JSON cannot store exactly ({problem})")
    problem = unstorable_json(runs)
    if problem:
        raise StudyError(f"grid params must be JSON values (numbers, strings, lists, dicts): {problem}")
    return axes, runs


def _known_length(values: Iterable[Any]) -> int | None:
    """The length a sized collection (a range, a list) declares, without iterating it."""
    try:
        return len(values)  # type: ignore[arg-type]
    except (TypeError, OverflowError):
        return None


def unstorable_json(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON exactly (None if it can).

    NaN and infinities have no JSON form and lone surrogates no UTF-8 one:
    storing them anyway would read back as something else (null, "nan").
    """
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone surrogate, which UTF-8 cannot store"
    except (TypeError, ValueError, RecursionError) as exc:
        return str(exc) if "float" not in str(exc) else "NaN or infinity, which JSON has no numbers for"
    return None


def describe_step(step: Callable[..., Any]) -> dict[str, Any]:
    """Name, file, line and source of a step as it is now; the hash tells later edits apart.

    Called by the coordinator only (it imports the state layer lazily so that
    worker processes, which load this module too, start without pydantic).
    """
    from state.hashing import source_hash

    target = inspect.unwrap(step)
    name = getattr(target, "__name__", None) or type(target).__name__
    module = getattr(target, "__module__", None) or ""
    qualname = getattr(target, "__qualname__", name)
    info: dict[str, Any] = {
        "name": name,
        "qualname": f"{module}.{qualname}" if module and not module.startswith("expwatch_study_") else qualname,
        "file": None,
        "line": None,
        "source": None,
        "source_hash": None,
    }
    try:
        info["file"] = inspect.getsourcefile(target)
        lines, line = inspect.getsourcelines(target)
        info["line"] = line
        info["source"] = "".join(lines)
        info["source_hash"] = source_hash(info["source"])
    except (TypeError, OSError):
        pass
    return info


def step_name(step: Callable[..., Any]) -> str:
    return getattr(step, "__name__", None) or type(step).__name__
