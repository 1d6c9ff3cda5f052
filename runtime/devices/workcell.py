"""A workcell file: its shape checked, then its PyLabRobot machines built without running foreign code.

A workcell file comes in one of three forms, told apart by content:

- expwatch's wrapper, naming each device's machine class beside that
  machine's own ``serialize()`` output::

    {"workcell": "bench-1",
     "devices": [{"name": "shaker", "class": "pylabrobot.heating_shaking.HeaterShaker",
                  "data": {...HeaterShaker.serialize()...}}]}

- a list of such entries, as scripts that save several machines write it
  (``name`` or ``key``; ``class`` as a dotted path, or ``module`` + ``class``);
  the workcell is named after the file;
- one machine's ``serialize()`` output alone: its ``type`` names the class and
  its ``name`` the device.

A class given by name only (``type``) is found in the pylabrobot module that
defines it (``pylabrobot_index``), read as text, never imported to look.

A workcell file must not be a way to run arbitrary code: each class path is
checked as a string (only ``pylabrobot.`` names, no private parts) before
anything is imported, and what it names must be a PyLabRobot ``Machine``.
``data`` goes through PyLabRobot's own deserializer with marshalled code
refused.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.devices.pylabrobot_index import modules_defining
from state.devices import valid_workcell_name

log = logging.getLogger(__name__)

_CLASS_PATH = re.compile(r"^pylabrobot(\.[A-Za-z][A-Za-z0-9_]*)+$")
_DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CLASS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
_ENTRY_KEYS = {"name", "key", "class", "module", "data"}
_FORMS = (
    "a workcell is an object with 'workcell' and 'devices', a list of {name, class, data} entries,"
    " or one machine's serialize() output"
)


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


def _class_name(name: object, where: str, key: str) -> str:
    if not isinstance(name, str) or not _CLASS_NAME.match(name):
        raise WorkcellError(f"{where}: {key!r} must be a class name (letters, digits, '_')")
    return name


def locate_class(class_name: object, where: str, key: str = "class") -> str:
    """The dotted path of the one pylabrobot class of this name; imports nothing."""
    name = _class_name(class_name, where, key)
    modules = modules_defining(name)
    if not modules:
        raise WorkcellError(f"{where}: no class named {name!r} is defined in pylabrobot")
    if len(modules) > 1:
        raise WorkcellError(
            f"{where}: {name!r} is defined in several pylabrobot modules ({', '.join(modules)}): name one with 'module'"
        )
    return check_class_path(f"{modules[0]}.{name}", where)


def _entry_class_path(entry: dict[str, Any], where: str) -> str:
    """``class`` as a dotted path, ``module`` + ``class``, or (without either) the data's own ``type``."""
    module, cls = entry.get("module"), entry.get("class")
    if module is not None:
        if not isinstance(module, str):
            raise WorkcellError(f"{where}: 'module' must be the dotted name of a pylabrobot module")
        return check_class_path(f"{module}.{_class_name(cls, where, 'class')}", where)
    if cls is None and isinstance(entry.get("data"), dict) and "type" in entry["data"]:
        return locate_class(entry["data"]["type"], where, "type")
    if isinstance(cls, str) and _CLASS_NAME.match(cls):
        return locate_class(cls, where)
    return check_class_path(cls, where)


def _parse_entry(position: int, entry: object, seen: set[str]) -> DeviceSpec:
    if not isinstance(entry, dict):
        raise WorkcellError(f"entry {position}: each device is an object with 'name', 'class', 'data'")
    if "name" in entry and "key" in entry and entry["name"] != entry["key"]:
        raise WorkcellError(f"entry {position}: 'name' and 'key' disagree")
    device_name = entry.get("name", entry.get("key"))
    where = _where(position, device_name)
    if not isinstance(device_name, str) or not _DEVICE_NAME.match(device_name):
        raise WorkcellError(f"{where}: 'name' must be letters, digits, '.', '_' or '-'")
    if device_name in seen:
        raise WorkcellError(f"{where}: the name is used twice")
    seen.add(device_name)
    extra = set(entry) - _ENTRY_KEYS
    if extra:
        raise WorkcellError(f"{where}: unknown keys {sorted(extra)}")
    data = entry.get("data")
    if not isinstance(data, dict):
        raise WorkcellError(f"{where}: 'data' must be the machine's serialize() output (an object)")
    return DeviceSpec(device_name, _entry_class_path(entry, where), data, position)


def _name_from_file(source: Path | None) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", source.stem if source else "")
    stem = stem.replace("..", "_").lstrip("._-")[:128]
    return stem if valid_workcell_name(stem) else "workcell"


def parse_workcell(raw: Any, *, source: Path | None = None) -> Workcell:
    """Validate a workcell document (any of the three forms) and its class paths; imports nothing."""
    label = str(source) if source else "workcell"
    if isinstance(raw, list):
        if not raw:
            raise WorkcellError(f"{label}: the list of devices is empty")
        seen: set[str] = set()
        specs = tuple(_parse_entry(position, entry, seen) for position, entry in enumerate(raw))
        return Workcell(name=_name_from_file(source), devices=specs, path=source)
    if not isinstance(raw, dict):
        raise WorkcellError(f"{label}: {_FORMS}")
    if "devices" not in raw and "workcell" not in raw:
        if "type" not in raw or "backend" not in raw:
            raise WorkcellError(f"{label}: {_FORMS}")
        spec = _parse_entry(0, {"name": raw.get("name"), "data": raw}, set())
        return Workcell(name=_name_from_file(source), devices=(spec,), path=source)
    unknown = set(raw) - {"workcell", "devices", "description"}
    if unknown:
        raise WorkcellError(f"{label}: unknown keys {sorted(unknown)}")
    name = raw.get("workcell")
    if not valid_workcell_name(name):
        raise WorkcellError(f"{label}: 'workcell' must be a name of letters, digits, '.', '_' or '-'")
    entries = raw.get("devices")
    if not isinstance(entries, list) or not entries:
        raise WorkcellError(f"{label}: 'devices' must be a non-empty list")
    seen = set()
    specs = tuple(_parse_entry(position, entry, seen) for position, entry in enumerate(entries))
    return Workcell(name=name, devices=specs, path=source)


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
    return target


def _backend_base() -> type:
    from pylabrobot.machines.backend import MachineBackend

    return MachineBackend


def import_backend_class(type_name: object, where: str) -> type | None:
    """The backend class a serialized ``{"type": ...}`` names, imported from the pylabrobot module defining it.

    PyLabRobot only finds backends among classes already imported; simulated
    backends such as ``STARChatterboxBackend`` live in modules nobody imports
    by default. Only modules the pylabrobot index lists are imported.
    """
    from pylabrobot.utils.object_parsing import find_subclass

    if not isinstance(type_name, str) or not _CLASS_NAME.match(type_name):
        return None
    base = _backend_base()
    found = find_subclass(type_name, base)
    for module_name in modules_defining(type_name) if found is None else ():
        check_class_path(module_name, where)
        try:
            importlib.import_module(module_name)
        except Exception as exc:
            raise WorkcellError(f"{where}: importing backend module {module_name!r} failed: {exc}") from None
        found = find_subclass(type_name, base)
        if found is not None:
            break
    return found


def _fit_backend_data(backend: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Drop serialized settings the backend's constructor does not take.

    Some backends serialize their parent's settings (``STARChatterboxBackend``
    writes the real STAR's ``device_address`` and timeouts) yet their
    constructor refuses them, so PyLabRobot cannot read back what it wrote.
    """
    try:
        parameters = inspect.signature(backend.__init__).parameters
    except (TypeError, ValueError):
        return data
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return data
    dropped = sorted(k for k in data if k != "type" and k not in parameters)
    if dropped:
        log.info("%s: %s does not take %s; left out", where, backend.__name__, ", ".join(dropped))
    return {k: v for k, v in data.items() if k not in dropped}


def build_machine(spec: DeviceSpec) -> Any:
    """A machine object from its spec, through PyLabRobot's own deserializer."""
    where = _where(spec.position, spec.name)
    cls = resolve_machine_class(spec.class_path, where)
    data = copy.deepcopy(dict(spec.data))
    backend_data = data.get("backend")
    if isinstance(backend_data, dict):
        backend = import_backend_class(backend_data.get("type"), where)
        if backend is not None:
            data["backend"] = _fit_backend_data(backend, backend_data, where)
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
