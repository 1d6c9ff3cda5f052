"""A workcell session: the machines of one workcell, set up, commanded and published by the runner that owns them.

``open_workcell`` builds every machine (``workcell``), runs them all on one
event-loop thread (``loop``) with their output in the run's log
(``capture``), hands steps a ``DeviceHandle`` per device (``handle``), and
keeps each device's status (offline, initializing, available, in use, error)
and readings in the state directory for the dashboard (``publisher``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runtime.devices.capture import (
    LogSink,
    LogTarget,
    SinkHandler,
    capture_into,
    current_device,
    quiet,
    route_stdout,
    unroute_stdout,
)
from runtime.devices.handle import Device, DeviceHandle
from runtime.devices.loop import LoopThread
from runtime.devices.publisher import PUBLISH_INTERVAL_S, SnapshotPublisher
from runtime.devices.readings import TRANSIENT_DETAILS, machine_details
from runtime.devices.workcell import Workcell, WorkcellError, build_machine, load_workcell
from state.devices import DeviceSnapshot, DeviceState, DeviceStatus, device_snapshot_path


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
        self._tmp_dir = self.publish_dir.parent / "tmp"
        self._sink = LogSink(log)
        self._state_lock = threading.Lock()
        self._closed = False
        self._loop = LoopThread(f"expwatch-devices-{workcell.name}")
        self._publisher = SnapshotPublisher(
            self.snapshot_path,
            snapshot=self.snapshot,
            refresh=lambda: self._loop.run(self._refresh(), timeout=max(5.0, self.publish_interval)),
            tmp_dir=self._tmp_dir,
            interval=publish_interval,
            durable=durable,
            thread_name=f"expwatch-devices-publish-{workcell.name}",
        )
        self._log_handler = SinkHandler(self._sink)
        self._devices: dict[str, Device] = {}
        self.devices: Mapping[str, DeviceHandle] = MappingProxyType({})

    # -- lifecycle -----------------------------------------------------------
    def _open(self, *, require_all: bool) -> WorkcellSession:
        self.publish_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        with capture_into(self._sink):
            machines = {spec.name: build_machine(spec) for spec in self.workcell.devices}
        thread_id = self._loop.start()
        route_stdout(thread_id, self._sink)
        logging.getLogger("pylabrobot").addHandler(self._log_handler)
        try:
            self._loop.run(self._make_devices(machines))
            self.devices = MappingProxyType({name: DeviceHandle(self, d) for name, d in self._devices.items()})
            self.publish()
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
        self._devices = {name: Device(spec, machines[name]) for name, spec in ((s.name, s) for s in self.workcell.devices)}

    async def _setup_all(self) -> None:
        await asyncio.gather(*(self._setup(d) for d in self._devices.values()))

    async def _setup(self, device: Device) -> None:
        token = current_device.set(device.spec.name)
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
            current_device.reset(token)

    async def _stop(self, device: Device) -> None:
        token = current_device.set(device.spec.name)
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
                self._set(device, DeviceStatus.OFFLINE, error=None, details=await self._stopped_details(device),
                          replace=True)
        finally:
            current_device.reset(token)

    def close(self) -> None:
        """Stop every machine, publish them offline, and end the threads. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._devices and self._loop.thread.is_alive():
                self._loop.run(self._stop_all(), timeout=120.0)
        finally:
            self._publisher.stop(5.0)
            if self._devices:
                self.publish()
            self._loop.stop()
            self._sink.flush()
            if self._loop.thread.ident is not None:
                unroute_stdout(self._loop.thread.ident)
            logging.getLogger("pylabrobot").removeHandler(self._log_handler)

    async def _stop_all(self) -> None:
        await asyncio.gather(*(self._stop(d) for d in self._devices.values()))

    def __enter__(self) -> WorkcellSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------
    def _command(self, device: Device, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._closed:
            raise RuntimeError(f"{device.spec.name}: the workcell is closed")
        return self._loop.run(self._run_command(device, method, args, kwargs))

    async def _run_command(self, device: Device, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = current_device.set(device.spec.name)
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
            current_device.reset(token)

    async def _quiet_details(self, device: Device) -> dict[str, Any]:
        """Status readings are not commands: what the simulated backends print for them is not logged."""
        token = quiet.set(True)
        try:
            return await machine_details(device.machine)
        finally:
            quiet.reset(token)

    async def _stopped_details(self, device: Device) -> dict[str, Any]:
        """After a stop, readings are what PyLabRobot left (a cleared target), live ones gone."""
        kept = {k: v for k, v in device.details.items() if k == "last_command"}
        return {**kept, **await machine_details(device.machine, live=False)}

    async def _refresh(self) -> None:
        for device in self._devices.values():
            if device.status is not DeviceStatus.AVAILABLE or device.lock.locked():
                continue
            async with device.lock:
                details = await self._quiet_details(device)
                with self._state_lock:
                    kept = {k: v for k, v in device.details.items() if k not in TRANSIENT_DETAILS}
                    merged = {**kept, **details}
                    if merged != device.details:
                        device.details = merged
                        device.updated_at = datetime.now(timezone.utc)

    # -- state and publishing ------------------------------------------------
    def _set(
        self,
        device: Device,
        status: DeviceStatus,
        *,
        error: str | None | object = ...,
        details: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> None:
        with self._state_lock:
            device.status = status
            if error is not ...:
                device.error = error  # type: ignore[assignment]
            if details is not None and replace:
                device.details = dict(details)
            elif details is not None:
                keep = {k: v for k, v in device.details.items() if k not in TRANSIENT_DETAILS}
                device.details = {**keep, **details}
                if status is not DeviceStatus.IN_USE:
                    device.details.pop("command", None)
            device.updated_at = datetime.now(timezone.utc)
        self._publisher.changed()

    def _state_of(self, device: Device) -> DeviceState:
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

    @property
    def publish_errors(self) -> int:
        return self._publisher.errors

    def publish(self) -> Path:
        """Write the current snapshot atomically; returns its path."""
        return self._publisher.publish()


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
