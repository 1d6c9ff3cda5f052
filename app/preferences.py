"""Preferences: what a user sets once (theme, sort, hidden columns, panels, alerts) and finds again.

One small JSON file in the user's config directory (``platformdirs``; the
``EXPWATCH_CONFIG`` variable names another file). Command-line flags win for
the session they are given in; what the user changes on the screen is saved
when the dashboard closes, and only that, so a flag given once never becomes
the default behind the user's back. A file that cannot be read is reported
and never written over.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from platformdirs import user_config_path

from state.alerts import ALERT_KINDS
from state.atomic import atomic_write_bytes
from state.board import SORTS

CONFIG_ENV = "EXPWATCH_CONFIG"
#: Past this a "config" file is something else: refused rather than read.
MAX_BYTES = 64 * 1024


class PreferencesError(ValueError):
    """The file exists but cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Preferences:
    theme: str | None = None
    """A Textual theme name (None: Textual's default)."""
    sort: str = SORTS[0]
    hidden_columns: tuple[str, ...] = ()
    gpu_panel: bool = True
    device_panel: bool = True
    alerts: tuple[str, ...] = ALERT_KINDS
    """The transitions that alert: any of failed, stale, finished."""
    bell: bool = True
    notify_cmd: str | None = None
    unknown: dict[str, Any] = field(default_factory=dict, compare=False)
    """Keys this version does not know, kept as they were when the file is saved again."""

    def to_json_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "unknown"}
        data["hidden_columns"] = list(self.hidden_columns)
        data["alerts"] = list(self.alerts)
        return {**self.unknown, **data}


def config_path() -> Path:
    given = os.environ.get(CONFIG_ENV)
    return Path(given).expanduser() if given else user_config_path("expwatch") / "config.json"


def _check(name: str, value: Any) -> Any:
    """One value as the file holds it, validated; ``PreferencesError`` says which key is wrong."""
    if name == "theme" or name == "notify_cmd":
        if value is not None and not isinstance(value, str):
            raise PreferencesError(f"{name} must be a string or null")
        return value or None
    if name == "sort":
        if value not in SORTS:
            raise PreferencesError(f"sort must be one of {', '.join(SORTS)}")
        return value
    if name in ("gpu_panel", "device_panel", "bell"):
        if not isinstance(value, bool):
            raise PreferencesError(f"{name} must be true or false")
        return value
    if name in ("hidden_columns", "alerts"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PreferencesError(f"{name} must be a list of strings")
        if name == "alerts" and set(value) - set(ALERT_KINDS):
            raise PreferencesError(f"alerts may hold only {', '.join(ALERT_KINDS)}")
        return tuple(dict.fromkeys(value))
    raise AssertionError(name)


def parse_preferences(text: str) -> Preferences:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise PreferencesError(f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise PreferencesError("not a JSON object")
    known = {f.name for f in fields(Preferences)} - {"unknown"}
    values = {name: _check(name, raw[name]) for name in known if name in raw}
    unknown = {k: v for k, v in raw.items() if k not in known}
    return Preferences(**values, unknown=unknown)


def load_preferences(path: Path | None = None) -> Preferences:
    """The saved preferences, or the defaults when there is no file; ``PreferencesError`` for a bad one."""
    path = path or config_path()
    try:
        if path.stat().st_size > MAX_BYTES:
            raise PreferencesError(f"{path}: larger than {MAX_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Preferences()
    except (OSError, UnicodeDecodeError) as exc:
        raise PreferencesError(f"{path}: {exc}") from None
    try:
        return parse_preferences(text)
    except PreferencesError as exc:
        raise PreferencesError(f"{path}: {exc}") from None


def save_preferences(prefs: Preferences, path: Path | None = None) -> None:
    """Write the file whole (temp file and rename): a reader never sees half of it."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(prefs.to_json_dict(), indent=2, ensure_ascii=False) + "\n").encode()
    atomic_write_bytes(path, data, tmp_dir=path.parent, mode=0o600)


def changed_since(start: Preferences, now: Preferences, saved: Preferences) -> Preferences:
    """``saved`` with what the user changed during the session (``start`` -> ``now``), and nothing else."""
    updates = {
        f.name: getattr(now, f.name)
        for f in fields(Preferences)
        if f.name != "unknown" and getattr(now, f.name) != getattr(start, f.name)
    }
    return replace(saved, **updates)


__all__ = [
    "CONFIG_ENV",
    "Preferences",
    "PreferencesError",
    "changed_since",
    "config_path",
    "load_preferences",
    "parse_preferences",
    "save_preferences",
]
