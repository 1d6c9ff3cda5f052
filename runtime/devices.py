"""Lab devices: a workcell file turned into PyLabRobot machines, owned by one runner.

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

PyLabRobot is async; steps are plain functions. ``open_workcell`` runs every
machine on one event-loop thread and hands out ``DeviceHandle`` objects whose
methods block the calling thread until the command finished there. Each
device's status (offline, initializing, available, in use, error) and
readable details are published into the state directory as a
``state.devices.DeviceSnapshot`` for the dashboard, which never touches the
hardware itself. The simulated ("chatterbox") backends print every command:
that output goes to the run's log, never to the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO, TypeVar

from state.atomic import atomic_write_bytes
from state.devices import (
    DeviceSnapshot,
    DeviceState,
    DeviceStatus,
    device_snapshot_path,
    valid_workcell_name,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

WORKCELLS_DIR = Path(__file__).with_name("workcells")
DEMO_WORKCELL = WORKCELLS_DIR / "demo.json"
PUBLISH_INTERVAL_S = 3.0

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


# -- output routing ----------------------------------------------------------

_current_device: contextvars.ContextVar[str | None] = contextvars.ContextVar("expwatch_device", default=None)
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("expwatch_device_quiet", default=False)


LogTarget = TextIO | Callable[[str], object] | None
"""Where device output goes: a text stream, a function taking one line, or None (a logger)."""


class _LogSink:
    """Whole lines, prefixed with the device that printed them, into the run's log."""

    def __init__(self, target: LogTarget) -> None:
        self._target = target
        self._partial: dict[str | None, str] = {}
        self._lock = threading.RLock()
        self._local = threading.local()

    @property
    def emitting(self) -> bool:
        """True on a thread that is inside this sink: what it prints then is the log itself."""
        return getattr(self._local, "emitting", False)

    def write(self, text: str) -> int:
        if _quiet.get():
            return len(text)
        device = _current_device.get()
        with self._lock:
            buffered = self._partial.pop(device, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._partial[device] = rest
            for line in lines:
                self._emit(device, line)
        return len(text)

    def line(self, device: str | None, text: str) -> None:
        with self._lock:
            self._emit(device, text)

    def _emit(self, device: str | None, line: str) -> None:
        text = f"[{device}] {line}" if device else f"[devices] {line}"
        target = self._target
        self._local.emitting = True
        try:
            if target is None:
                log.info("%s", text)
            elif callable(target) and not hasattr(target, "write"):
                target(text)
            else:
                target.write(text + "\n")  # type: ignore[union-attr]
                target.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            log.info("%s", text)
        finally:
            self._local.emitting = False

    def flush(self) -> None:
        with self._lock:
            for device, rest in list(self._partial.items()):
                self._emit(device, rest)
            self._partial.clear()


class _ThreadRoutedStdout:
    """``sys.stdout`` while device loops run: their threads print into a log, others as before."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.routes: dict[int, _LogSink] = {}

    def write(self, text: str) -> int:
        sink = self.routes.get(threading.get_ident())
        if sink is not None and not sink.emitting:
            return sink.write(text)
        return self.fallback.write(text)

    def flush(self) -> None:
        sink = self.routes.get(threading.get_ident())
        if sink is None or sink.emitting:
            self.fallback.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_route_lock = threading.Lock()


def _route_stdout(thread_id: int, sink: _LogSink) -> None:
    with _route_lock:
        current = sys.stdout
        if not isinstance(current, _ThreadRoutedStdout):
            current = _ThreadRoutedStdout(current)
            sys.stdout = current
        current.routes[thread_id] = sink


def _unroute_stdout(thread_id: int) -> None:
    with _route_lock:
        current = sys.stdout
        if isinstance(current, _ThreadRoutedStdout):
            current.routes.pop(thread_id, None)
            if not current.routes:
                sys.stdout = current.fallback


class _SinkHandler(logging.Handler):
    def __init__(self, sink: _LogSink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if _quiet.get() or self.sink.emitting:
            return
        try:
            self.sink.line(_current_device.get(), f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:
            self.handleError(record)


# -- the event-loop thread ---------------------------------------------------


class _LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> int:
        self.thread.start()
        self._ready.wait()
        assert self.thread.ident is not None
        return self.thread.ident

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a device command cannot wait for another from the device loop itself")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()


# -- devices -----------------------------------------------------------------


@dataclass
class _Device:
    spec: DeviceSpec
    machine: Any
    status: DeviceStatus = DeviceStatus.OFFLINE
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def type(self) -> str:
        return type(self.machine).__name__

    @property
    def backend(self) -> str:
        backend = getattr(self.machine, "backend", None)
        return type(backend).__name__ if backend is not None else ""


async def _machine_details(machine: Any) -> dict[str, Any]:
    """What the machine's own state getters say; a getter that fails reads None, with the reason."""
    from pylabrobot.centrifuge import Centrifuge
    from pylabrobot.liquid_handling import LiquidHandler
    from pylabrobot.plate_reading import PlateReader
    from pylabrobot.temperature_controlling import TemperatureController

    details: dict[str, Any] = {}

    async def attempt(key: str, read: Callable[[], Any]) -> None:
        try:
            value = read()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            details[key] = None
            details["reading_error"] = f"{key}: {type(exc).__name__}: {exc}"
            return
        details[key] = value

    if isinstance(machine, TemperatureController):
        await attempt("temperature_c", machine.get_temperature)
        details["target_c"] = machine.target_temperature
    if isinstance(machine, Centrifuge):
        details["door_open"] = machine.door_open
        bucket = machine.at_bucket
        details["at_bucket"] = bucket.name if bucket is not None else None
    if isinstance(machine, LiquidHandler):
        head = getattr(machine, "head", {}) or {}
        details["channels"] = len(head) or getattr(machine.backend, "num_channels", None)
        details["tips_mounted"] = sum(1 for t in head.values() if t.has_tip)
        head96 = getattr(machine, "head96", {}) or {}
        if head96:
            details["head96_tips_mounted"] = sum(1 for t in head96.values() if t.has_tip)
    if isinstance(machine, PlateReader):
        plates = [c.name for c in machine.children]
        details["plate"] = plates[0] if plates else None
    return {k: _jsonable(v) for k, v in details.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


_TRANSIENT_DETAILS = ("command", "reading_error")
"""Details that only hold until the next reading."""


class DeviceHandle:
    """A synchronous front for one machine: ``handle.set_temperature(37)`` runs it on the device loop.

    Any public method of the machine can be called; coroutines are awaited on
    the device loop and their result returned. While a command runs the
    device is ``in_use``; a command that raises leaves it in ``error`` with the
    error text (and the exception is re-raised to the step).
    """

    def __init__(self, session: WorkcellSession, device: _Device) -> None:
        self._session = session
        self._device = device

    @property
    def name(self) -> str:
        return self._device.spec.name

    @property
    def machine(self) -> Any:
        """The PyLabRobot object itself; only touch it from the device loop."""
        return self._device.machine

    @property
    def status(self) -> DeviceStatus:
        return self._device.status

    def state(self) -> DeviceState:
        return self._session._state_of(self._device)

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        if method.startswith("_"):
            raise AttributeError(f"{self.name}: private method {method!r} is not a device command")
        if not callable(getattr(self._device.machine, method, None)):
            raise AttributeError(f"{self.name}: {type(self._device.machine).__name__} has no method {method!r}")
        return self._session._command(self._device, method, args, kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        value = getattr(self._device.machine, attr)
        if callable(value):
            def command(*args: Any, **kwargs: Any) -> Any:
                return self.call(attr, *args, **kwargs)

            command.__name__ = attr
            command.__doc__ = getattr(value, "__doc__", None)
            return command
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {a for a in dir(self._device.machine) if not a.startswith("_")})

    def __repr__(self) -> str:
        return f"<DeviceHandle {self.name} {self._device.type} {self._device.status.value}>"


class WorkcellSession:
    """The machines of one workcell, set up and owned by this process.

    Use ``open_workcell``. ``devices[name]`` are the handles steps use;
    ``snapshot()`` is the current status; the snapshot file in
    ``publish_dir`` is rewritten at every change and every
    ``publish_interval`` seconds (with fresh readings) by a publisher thread,
    so commands never wait on the disk.
    """

    def __init__(
        self,
        workcell: Workcell,
        *,
        publish_dir: Path,
        experiment_id: str | None = None,
        log: LogTarget = None,
        publish_interval: float = PUBLISH_INTERVAL_S,
        durable: bool = False,
    ) -> None:
        self.workcell = workcell
        self.experiment_id = experiment_id
        self.publish_dir = Path(publish_dir)
        self.snapshot_path = device_snapshot_path(self.publish_dir, workcell.name)
        self.publish_interval = publish_interval
        self._durable = durable
        self._tmp_dir = self.publish_dir.parent / "tmp"
        self._sink = _LogSink(log)
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._changed = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._loop = _LoopThread(f"expwatch-devices-{workcell.name}")
        self._publisher: threading.Thread | None = None
        self._log_handler = _SinkHandler(self._sink)
        self._devices: dict[str, _Device] = {}
        self.devices: Mapping[str, DeviceHandle] = MappingProxyType({})
        self.publish_errors = 0

    # -- lifecycle -----------------------------------------------------------
    def _open(self, *, require_all: bool) -> WorkcellSession:
        self.publish_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        with _capture_into(self._sink):
            machines = {spec.name: build_machine(spec) for spec in self.workcell.devices}
        thread_id = self._loop.start()
        _route_stdout(thread_id, self._sink)
        logging.getLogger("pylabrobot").addHandler(self._log_handler)
        try:
            self._loop.run(self._make_devices(machines))
            self.devices = MappingProxyType({name: DeviceHandle(self, d) for name, d in self._devices.items()})
            self.publish()
            self._publisher = threading.Thread(
                target=self._publish_loop, name=f"expwatch-devices-publish-{self.workcell.name}", daemon=True
            )
            self._publisher.start()
            self._loop.run(self._setup_all())
        except BaseException:
            self.close()
            raise
        failed = {n: d.error for n, d in self._devices.items() if d.status is DeviceStatus.ERROR}
        if failed and require_all:
            self.close()
            listing = "; ".join(f"{name}: {error}" for name, error in failed.items())
            raise WorkcellError(f"workcell {self.workcell.name!r}: setup failed for {listing}")
        return self

    async def _make_devices(self, machines: dict[str, Any]) -> None:
        # asyncio.Lock objects are created on the loop that will use them.
        self._devices = {name: _Device(spec, machines[name]) for name, spec in ((s.name, s) for s in self.workcell.devices)}

    async def _setup_all(self) -> None:
        await asyncio.gather(*(self._setup(d) for d in self._devices.values()))

    async def _setup(self, device: _Device) -> None:
        token = _current_device.set(device.spec.name)
        try:
            async with device.lock:
                self._set(device, DeviceStatus.INITIALIZING)
                try:
                    await device.machine.setup()
                except Exception as exc:
                    self._set(device, DeviceStatus.ERROR, error=f"setup failed: {type(exc).__name__}: {exc}")
                    return
                self._set(device, DeviceStatus.AVAILABLE, details=await self._quiet_details(device))
        finally:
            _current_device.reset(token)

    async def _stop(self, device: _Device) -> None:
        token = _current_device.set(device.spec.name)
        try:
            async with device.lock:
                if not getattr(device.machine, "setup_finished", False):
                    if device.status is not DeviceStatus.ERROR:
                        self._set(device, DeviceStatus.OFFLINE)
                    return
                try:
                    await device.machine.stop()
                except Exception as exc:
                    self._set(device, DeviceStatus.ERROR, error=f"stop failed: {type(exc).__name__}: {exc}")
                    return
                self._set(device, DeviceStatus.OFFLINE, error=None)
        finally:
            _current_device.reset(token)

    def close(self) -> None:
        """Stop every machine, publish them offline, and end the threads. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._devices and self._loop.thread.is_alive():
                self._loop.run(self._stop_all(), timeout=120.0)
        finally:
            self._closing.set()
            self._changed.set()
            if self._publisher is not None:
                self._publisher.join(5.0)
            if self._devices:
                self.publish()
            self._loop.stop()
            self._sink.flush()
            if self._loop.thread.ident is not None:
                _unroute_stdout(self._loop.thread.ident)
            logging.getLogger("pylabrobot").removeHandler(self._log_handler)

    async def _stop_all(self) -> None:
        await asyncio.gather(*(self._stop(d) for d in self._devices.values()))

    def __enter__(self) -> WorkcellSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------
    def _command(self, device: _Device, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._closed:
            raise RuntimeError(f"{device.spec.name}: the workcell is closed")
        return self._loop.run(self._run_command(device, method, args, kwargs))

    async def _run_command(self, device: _Device, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = _current_device.set(device.spec.name)
        try:
            async with device.lock:
                self._set(device, DeviceStatus.IN_USE, details={"command": method})
                try:
                    result = getattr(device.machine, method)(*args, **kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                except BaseException as exc:
                    text = "cancelled" if isinstance(exc, asyncio.CancelledError) else f"{type(exc).__name__}: {exc}"
                    self._set(device, DeviceStatus.ERROR, error=f"{method}: {text}",
                              details={**await self._quiet_details(device), "last_command": method})
                    raise
                self._set(device, DeviceStatus.AVAILABLE, error=None,
                          details={**await self._quiet_details(device), "last_command": method})
                return result
        finally:
            _current_device.reset(token)

    async def _quiet_details(self, device: _Device) -> dict[str, Any]:
        """Status readings are not commands: what the simulated backends print for them is not logged."""
        token = _quiet.set(True)
        try:
            return await _machine_details(device.machine)
        finally:
            _quiet.reset(token)

    async def _refresh(self) -> None:
        for device in self._devices.values():
            if device.status is not DeviceStatus.AVAILABLE or device.lock.locked():
                continue
            async with device.lock:
                details = await self._quiet_details(device)
                with self._state_lock:
                    kept = {k: v for k, v in device.details.items() if k not in _TRANSIENT_DETAILS}
                    merged = {**kept, **details}
                    if merged != device.details:
                        device.details = merged
                        device.updated_at = datetime.now(timezone.utc)

    # -- state and publishing ------------------------------------------------
    def _set(
        self,
        device: _Device,
        status: DeviceStatus,
        *,
        error: str | None | object = ...,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self._state_lock:
            device.status = status
            if error is not ...:
                device.error = error  # type: ignore[assignment]
            if details is not None:
                keep = {k: v for k, v in device.details.items() if k not in _TRANSIENT_DETAILS}
                device.details = {**keep, **details}
                if status is not DeviceStatus.IN_USE:
                    device.details.pop("command", None)
            device.updated_at = datetime.now(timezone.utc)
        self._changed.set()

    def _state_of(self, device: _Device) -> DeviceState:
        with self._state_lock:
            return DeviceState(
                name=device.spec.name,
                type=device.type,
                backend=device.backend,
                status=device.status,
                details=dict(device.details),
                error=device.error,
                updated_at=device.updated_at,
            )

    def snapshot(self) -> DeviceSnapshot:
        return DeviceSnapshot(
            workcell=self.workcell.name,
            experiment_id=self.experiment_id,
            owner_pid=os.getpid(),
            taken_at=datetime.now(timezone.utc),
            devices=[self._state_of(d) for d in self._devices.values()],
        )

    def publish(self) -> Path:
        """Write the current snapshot atomically; returns its path."""
        with self._write_lock:
            data = self.snapshot().to_json().encode()
            atomic_write_bytes(self.snapshot_path, data, tmp_dir=self._tmp_dir, durable=self._durable)
        return self.snapshot_path

    def _publish_loop(self) -> None:
        while not self._closing.is_set():
            changed = self._changed.wait(self.publish_interval)
            if self._closing.is_set():
                return
            self._changed.clear()
            if not changed:
                try:
                    self._loop.run(self._refresh(), timeout=max(5.0, self.publish_interval))
                except Exception:
                    log.warning("refreshing device readings failed", exc_info=True)
            try:
                self.publish()
            except OSError:
                self.publish_errors += 1
                log.warning("publishing the device snapshot failed", exc_info=True)


def open_workcell(
    path: Path | str | Workcell,
    *,
    publish_dir: Path,
    experiment_id: str | None = None,
    log: LogTarget = None,
    publish_interval: float = PUBLISH_INTERVAL_S,
    require_all: bool = True,
) -> WorkcellSession:
    """Build, set up and publish the machines of a workcell; close (or ``with``) to stop them.

    With ``require_all`` a device whose setup fails stops the others and
    raises ``WorkcellError``; without it the session opens with that device
    in ``error`` (used to check a workcell file).
    """
    workcell = path if isinstance(path, Workcell) else load_workcell(path)
    session = WorkcellSession(
        workcell, publish_dir=publish_dir, experiment_id=experiment_id, log=log, publish_interval=publish_interval
    )
    return session._open(require_all=require_all)


def capture_device_output(log_stream: LogTarget) -> contextlib.AbstractContextManager[None]:
    """Route what this thread prints (and pylabrobot logs) into ``log_stream`` for the block."""
    return _capture_into(_LogSink(log_stream))


@contextlib.contextmanager
def _capture_into(sink: _LogSink) -> Iterator[None]:
    handler = _SinkHandler(sink)
    thread_id = threading.get_ident()
    _route_stdout(thread_id, sink)
    logging.getLogger("pylabrobot").addHandler(handler)
    try:
        yield
    finally:
        sink.flush()
        _unroute_stdout(thread_id)
        logging.getLogger("pylabrobot").removeHandler(handler)


# -- the demo workcell -------------------------------------------------------


def demo_machines() -> list[tuple[str, str, Any]]:
    """Five simulated machines: (name, class path, machine)."""
    with capture_device_output(None):
        from pylabrobot.centrifuge import Centrifuge
        from pylabrobot.centrifuge.chatterbox import CentrifugeChatterboxBackend
        from pylabrobot.heating_shaking import HeaterShaker, HeaterShakerChatterboxBackend
        from pylabrobot.liquid_handling import LiquidHandler
        from pylabrobot.liquid_handling.backends import LiquidHandlerChatterboxBackend
        from pylabrobot.plate_reading import PlateReader, PlateReaderChatterboxBackend
        from pylabrobot.resources import (
            PLT_CAR_L5AC_A00,
            TIP_CAR_480_A00,
            Coordinate,
            STARLetDeck,
            cor_96_wellplate_360uL_Fb,
            hamilton_96_tiprack_1000uL_filter,
        )
        from pylabrobot.temperature_controlling import (
            TemperatureController,
            TemperatureControllerChatterboxBackend,
        )

        deck = STARLetDeck()
        tip_carrier = TIP_CAR_480_A00(name="tip_carrier")
        tip_carrier[0] = hamilton_96_tiprack_1000uL_filter(name="tips")
        plate_carrier = PLT_CAR_L5AC_A00(name="plate_carrier")
        plate_carrier[0] = cor_96_wellplate_360uL_Fb(name="source_plate")
        deck.assign_child_resource(tip_carrier, rails=3)
        deck.assign_child_resource(plate_carrier, rails=10)
        reader = PlateReader(
            name="plate_reader", size_x=150.0, size_y=120.0, size_z=80.0, backend=PlateReaderChatterboxBackend()
        )
        reader.assign_child_resource(cor_96_wellplate_360uL_Fb(name="assay_plate"))
        return [
            (
                "liquid_handler",
                "pylabrobot.liquid_handling.LiquidHandler",
                LiquidHandler(backend=LiquidHandlerChatterboxBackend(num_channels=8), deck=deck),
            ),
            (
                "heater_shaker",
                "pylabrobot.heating_shaking.HeaterShaker",
                HeaterShaker(
                    name="heater_shaker", size_x=147.0, size_y=104.0, size_z=116.0,
                    backend=HeaterShakerChatterboxBackend(), child_location=Coordinate(10.0, 10.0, 100.0),
                ),
            ),
            ("plate_reader", "pylabrobot.plate_reading.PlateReader", reader),
            (
                "incubator_block",
                "pylabrobot.temperature_controlling.TemperatureController",
                TemperatureController(
                    name="incubator_block", size_x=128.0, size_y=86.0, size_z=90.0,
                    backend=TemperatureControllerChatterboxBackend(dummy_temperature=22.0),
                    child_location=Coordinate(0.0, 0.0, 90.0),
                ),
            ),
            (
                "centrifuge",
                "pylabrobot.centrifuge.Centrifuge",
                Centrifuge(backend=CentrifugeChatterboxBackend(), name="centrifuge",
                           size_x=300.0, size_y=400.0, size_z=300.0),
            ),
        ]


def demo_workcell(name: str = "demo") -> dict[str, Any]:
    """The demo workcell document, from the machines' own ``serialize()``."""
    return {
        "workcell": name,
        "description": "Simulated (chatterbox) PyLabRobot machines for the expwatch demo and tests.",
        "devices": [
            {"name": device_name, "class": class_path, "data": machine.serialize()}
            for device_name, class_path, machine in demo_machines()
        ],
    }


def write_demo_workcell(path: Path = DEMO_WORKCELL) -> Path:
    """(Re)generate the shipped demo workcell file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_workcell(demo_workcell()))
    return path


def format_workcell(doc: dict[str, Any]) -> str:
    """JSON with one line per device: a diff shows which device changed, and the file stays small."""
    head = {k: v for k, v in doc.items() if k != "devices"}
    lines = [json.dumps(entry, separators=(",", ":")) for entry in doc["devices"]]
    body = ",\n  ".join(lines)
    top = json.dumps(head, indent=2)[:-2]
    return f'{top},\n  "devices": [\n  {body}\n  ]\n}}\n'


