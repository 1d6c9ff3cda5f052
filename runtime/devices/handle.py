"""One machine of an open workcell: its live status, and the synchronous handle steps call it through.

``Device`` is the session's record of a machine (status, error, readings,
and the asyncio lock that serialises its commands). ``DeviceHandle`` is what
a step holds: calling a method runs it on the device loop and blocks until
it finished there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from runtime.devices.workcell import DeviceSpec
from state.devices import DeviceState, DeviceStatus

if TYPE_CHECKING:
    from runtime.devices.session import WorkcellSession


@dataclass
class Device:
    """A machine as its session tracks it; only the session's threads change it."""

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


class DeviceHandle:
    """A synchronous front for one machine: ``handle.set_temperature(37)`` runs it on the device loop.

    Any public method of the machine can be called; coroutines are awaited on
    the device loop and their result returned. While a command runs the
    device is ``in_use``; a command that raises leaves it in ``error`` with the
    error text (and the exception is re-raised to the step).
    """

    def __init__(self, session: WorkcellSession, device: Device) -> None:
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
