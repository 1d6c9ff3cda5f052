"""A workcell file: its shape checked, then its PyLabRobot machines built without running foreign code.

A workcell file names each device's PyLabRobot machine class and holds that
machine's own ``serialize()`` output::

    {"workcell": "bench-1",
     "devices": [{"name": "shaker", "class": "pylabrobot.heating_shaking.HeaterShaker",
                  "data": {...HeaterShaker.serialize()...}}]}

A workcell file must not be a way to run arbitrary code: each class path is
checked as a string (only ``pylabrobot.`` names, no private parts) before
anything is imported, and what it names must be a PyLabRobot ``Machine``.
``data`` goes through PyLabRobot's own deserializer with marshalled code
refused.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state.devices import valid_workcell_name

log = logging.getLogger(__name__)

_CLASS_PATH = re.compile(r"^pylabrobot(\.[A-Za-z][A-Za-z0-9_]*)+$")
_DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class WorkcellError(ValueError):
    """A workcell file, or one of its entries, that cannot be used. The message names the entry."""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    class_path: str
    data: Mapping[str, Any]
    position: int


@dataclass(frozen=True, slots=True)
class Workcell:
    name: str
    devices: tuple[DeviceSpec, ...]
    path: Path | None = None


def _where(position: int, name: object) -> str:
    return f"device {name!r} (entry {position})" if isinstance(name, str) and name else f"entry {position}"


def check_class_path(class_path: object, where: str) -> str:
    """Refuse any class path that is not a plain public ``pylabrobot.`` name. Imports nothing."""
    if not isinstance(class_path, str) or not class_path:
        raise WorkcellError(f"{where}: 'class' must be the dotted path of a pylabrobot machine class")
    if not _CLASS_PATH.match(class_path):
        if not class_path.startswith("pylabrobot."):
            raise WorkcellError(
                f"{where}: class {class_path!r} is refused: only classes under 'pylabrobot.' may be named"
            )
        raise WorkcellError(
            f"{where}: class {class_path!r} is refused: use a public dotted name (letters, digits, '_')"
        )
    return class_path


def parse_workcell(raw: Any, *, source: Path | None = None) -> Workcell:
    """Validate a workcell document's shape and class paths; imports nothing."""
    label = str(source) if source else "workcell"
    if not isinstance(raw, dict):
        raise WorkcellError(f"{label}: a workcell is a JSON object with 'workcell' and 'devices'")
    unknown = set(raw) - {"workcell", "devices", "description"}
    if unknown:
        raise WorkcellError(f"{label}: unknown keys {sorted(unknown)}")
    name = raw.get("workcell")
    if not valid_workcell_name(name):
        raise WorkcellError(f"{label}: 'workcell' must be a name of letters, digits, '.', '_' or '-'")
    entries = raw.get("devices")
    if not isinstance(entries, list) or not entries:
        raise WorkcellError(f"{label}: 'devices' must be a non-empty list")
    specs: list[DeviceSpec] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise WorkcellError(f"entry {position}: each device is an object with 'name', 'class', 'data'")
        device_name = entry.get("name")
        where = _where(position, device_name)
        if not isinstance(device_name, str) or not _DEVICE_NAME.match(device_name):
            raise WorkcellError(f"{where}: 'name' must be letters, digits, '.', '_' or '-'")
        if device_name in seen:
            raise WorkcellError(f"{where}: the name is used twice")
        seen.add(device_name)
        extra = set(entry) - {"name", "class", "data"}
        if extra:
            raise WorkcellError(f"{where}: unknown keys {sorted(extra)}")
        class_path = check_class_path(entry.get("class"), where)
        data = entry.get("data")
        if not isinstance(data, dict):
            raise WorkcellError(f"{where}: 'data' must be the machine's serialize() output (an object)")
        specs.append(DeviceSpec(device_name, class_path, data, position))
    return Workcell(name=name, devices=tuple(specs), path=source)


def load_workcell(path: Path | str) -> Workcell:
    path = Path(path)
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise WorkcellError(f"{path}: no such workcell file") from None
    except (OSError, ValueError) as exc:
        raise WorkcellError(f"{path}: not a readable JSON file: {exc}") from None
    return parse_workcell(raw, source=path)


def _machine_base() -> type:
    from pylabrobot.machines.machine import Machine

    return Machine


def resolve_machine_class(class_path: str, where: str = "device") -> type:
    """Import the machine class a (checked) class path names."""
    check_class_path(class_path, where)
    parts = class_path.split(".")
    target: Any = None
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name) and exc.name.startswith("pylabrobot"):
                continue
            raise WorkcellError(f"{where}: importing {module_name!r} failed: {exc}") from None
        except Exception as exc:
            raise WorkcellError(f"{where}: importing {module_name!r} failed: {exc}") from None
        if split != len(parts) - 1:
            raise WorkcellError(f"{where}: {class_path!r} does not name a class in module {module_name!r}")
        target = getattr(module, parts[-1], None)
        break
    machine = _machine_base()
    if not (isinstance(target, type) and issubclass(target, machine)):
        raise WorkcellError(f"{where}: {class_path!r} is not a PyLabRobot machine class")
    if not target.__module__.startswith("pylabrobot."):
        raise WorkcellError(f"{where}: {class_path!r} is not defined in pylabrobot")
    _import_simulated_backends(parts[1])
    return target


def _import_simulated_backends(area: str) -> None:
    """Backends are found by class name among loaded classes: load the area's chatterbox module."""
    name = f"pylabrobot.{area}.chatterbox"
    try:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    except ImportError:
        log.debug("no simulated backends in %s", name, exc_info=True)


def build_machine(spec: DeviceSpec) -> Any:
    """A machine object from its spec, through PyLabRobot's own deserializer."""
    where = _where(spec.position, spec.name)
    cls = resolve_machine_class(spec.class_path, where)
    data = copy.deepcopy(dict(spec.data))
    try:
        if "allow_marshal" in inspect.signature(cls.deserialize).parameters:
            machine = cls.deserialize(data, allow_marshal=False)
        else:
            machine = cls.deserialize(data)
    except Exception as exc:
        raise WorkcellError(f"{where}: its data is not a serialized {cls.__name__}: {type(exc).__name__}: {exc}") from None
    if not isinstance(machine, cls):
        raise WorkcellError(f"{where}: its data describes a {type(machine).__name__}, not a {cls.__name__}")
    return machine


def format_workcell(doc: dict[str, Any]) -> str:
    """JSON with one line per device: a diff shows which device changed, and the file stays small."""
    head = {k: v for k, v in doc.items() if k != "devices"}
    lines = [json.dumps(entry, separators=(",", ":")) for entry in doc["devices"]]
    body = ",\n  ".join(lines)
    top = json.dumps(head, indent=2)[:-2]
    return f'{top},\n  "devices": [\n  {body}\n  ]\n}}\n'
