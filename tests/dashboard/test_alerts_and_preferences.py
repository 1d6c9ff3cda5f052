"""Alerts reach the user (notice, bell, --notify-cmd) once per transition; preferences load, apply and save."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from app.app import DashboardOptions, ExpwatchApp
from app.cli import main
from app.preferences import Preferences, load_preferences, save_preferences

from tests.dashboard.conftest import FROZEN, ScriptedProbe, StaticGpuSource, native_doc, write_raw
from tests.dashboard.helpers import wait_for


def make(root: Path, prefs: Preferences, *, path: Path | None = None, saved: Preferences | None = None) -> ExpwatchApp:
    options = DashboardOptions(sources=(root,), gpus=False, preferences=prefs, preferences_path=path, saved_preferences=saved)
    return ExpwatchApp(options, clock=lambda: FROZEN, probe=ScriptedProbe(), gpu_source=StaticGpuSource())


def record_notices(app: ExpwatchApp, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[int]]:
    notices: list[str] = []
    bells: list[int] = []
    real = app.notify

    def notify(message, *args, **kwargs):
        notices.append(str(message))
        return real(message, *args, **kwargs)

    monkeypatch.setattr(app, "notify", notify)
    monkeypatch.setattr(app, "bell", lambda: bells.append(1))
    return notices, bells


def fail(root: Path, key: str) -> None:
    doc = native_doc(key, "failed", pid=4343, done=3, failed=1)
    write_raw(root, doc.model_copy(update={"error_message": "ValueError: boom"}))


async def test_a_failure_alerts_once_with_notice_bell_and_hook(state_dir: Path, tmp_path: Path, monkeypatch):
    events = tmp_path / "events.jsonl"
    app = make(state_dir, Preferences(notify_cmd=f"cat >> '{events}'"))
    notices, bells = record_notices(app, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.pause(0.3)
        # The first load holds a failed and a stale experiment: nothing is announced for them.
        assert not any("failed" in n or "stale" in n for n in notices) and not bells and not events.exists()
        fail(state_dir, "sweep-alive")
        await wait_for(pilot, lambda: events.exists() and events.read_text().count("\n") >= 1, what="the hook's event")
        await wait_for(pilot, lambda: "sweep-alive failed: ValueError: boom" in notices, what="the notice")
        assert bells == [1]
        app._reconcile_tick(now=True)  # the same file read again: no second alert
        await pilot.pause(0.3)
    [line] = events.read_text().splitlines()
    event = json.loads(line)
    assert event["event"] == "failed" and event["experiment"] == "sweep-alive" and event["reason"] == "ValueError: boom"
    assert notices.count("sweep-alive failed: ValueError: boom") == 1 and bells == [1]


async def test_alerts_are_chosen_per_kind_and_the_bell_can_be_off(state_dir: Path, tmp_path: Path, monkeypatch):
    app = make(state_dir, Preferences(alerts=("finished",), bell=False))
    notices, bells = record_notices(app, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        fail(state_dir, "sweep-alive")
        await wait_for(pilot, lambda: app.board.get("sweep-alive").category == "failed", what="the failure seen")
        write_raw(state_dir, native_doc("sweep-dead", "completed", pid=4343, done=4))
        await wait_for(pilot, lambda: any("sweep-dead finished" in n for n in notices), what="the finish")
    assert not any("sweep-alive" in n for n in notices) and not bells


async def test_a_failing_hook_is_a_notice(state_dir: Path, monkeypatch):
    app = make(state_dir, Preferences(notify_cmd="echo no webhook >&2; exit 7"))
    notices, _ = record_notices(app, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        fail(state_dir, "sweep-alive")
        await wait_for(pilot, lambda: "--notify-cmd exited with 7: no webhook" in notices, what="the hook's failure")


async def test_preferences_apply_at_start(state_dir: Path):
    app = make(state_dir, Preferences(theme="nord", sort="id", hidden_columns=("energy", "eta"), device_panel=False))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.pause(0.1)
        assert app.theme == "nord" and app.board.sort_mode == "id"
        assert {c.key for c, _ in app.main.table.visible_columns(300)}.isdisjoint({"energy", "eta"})
        assert not app.main.query_one("#devices").display
        assert app.main.table.keys == sorted(app.main.table.keys)


async def test_what_the_user_changes_is_saved_and_flags_are_not(state_dir: Path, tmp_path: Path):
    path = tmp_path / "config.json"
    saved = Preferences(sort="id", notify_cmd="notify-send expwatch", unknown={"later": 1})
    save_preferences(saved, path)
    # The flag asks for --sort progress this session; the user then changes the theme and hides the devices.
    app = make(state_dir, replace(saved, sort="progress"), path=path, saved=load_preferences(path))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        app.theme = "gruvbox"
        await pilot.press("d")
        await pilot.press("q")
    after = load_preferences(path)
    assert after.theme == "gruvbox" and not after.device_panel
    assert after.sort == "id"  # the flag stayed this session's
    assert after.notify_cmd == "notify-send expwatch" and after.unknown == {"later": 1}


async def test_an_observer_saves_no_preferences(state_dir: Path, tmp_path: Path):
    path = tmp_path / "config.json"
    save_preferences(Preferences(sort="id"), path)
    before = path.read_bytes()
    options = DashboardOptions(sources=(state_dir,), gpus=False, read_only=True, preferences=Preferences(sort="id"),
                               preferences_path=path, saved_preferences=load_preferences(path))
    app = ExpwatchApp(options, clock=lambda: FROZEN, probe=ScriptedProbe(), gpu_source=StaticGpuSource())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        app.theme = "gruvbox"
        await pilot.press("d")
        await pilot.press("q")
    assert path.read_bytes() == before


async def test_an_unreadable_config_is_reported_and_never_written(state_dir: Path, tmp_path: Path, monkeypatch, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"sort": "sideways"}')
    monkeypatch.setenv("EXPWATCH_CONFIG", str(path))
    assert main(["--print-config"]) == 1
    assert "sort must be one of" in capsys.readouterr().err
    assert path.read_text() == '{"sort": "sideways"}'


def test_the_dashboard_opens_on_defaults_when_the_config_is_unreadable(state_dir: Path, tmp_path: Path, monkeypatch, capsys):
    """Reported, used as the defaults, never saved over: the dashboard still opens."""
    import app.app as dashboard

    path = tmp_path / "config.json"
    path.write_text('{"sort": "sideways"}')
    monkeypatch.setenv("EXPWATCH_CONFIG", str(path))
    opened = []
    monkeypatch.setattr(dashboard, "run_dashboard", lambda options: opened.append(options) or 0)
    assert main([str(state_dir), "--sort", "id"]) == 0
    assert "ignoring the config file" in capsys.readouterr().err
    (options,) = opened
    assert options.preferences == Preferences(sort="id") and options.preferences_path is None
    assert path.read_text() == '{"sort": "sideways"}'


def test_print_config_shows_path_and_values(tmp_path: Path, monkeypatch, capsys):
    path = tmp_path / "cfg" / "config.json"
    monkeypatch.setenv("EXPWATCH_CONFIG", str(path))
    assert main(["--print-config"]) == 0
    out = capsys.readouterr().out
    assert f"config file: {path} (not there yet" in out
    save_preferences(Preferences(bell=False, alerts=("failed",)), path)
    assert main(["--print-config"]) == 0
    out = capsys.readouterr().out
    values = json.loads(out.split("\n", 1)[1])
    assert values["bell"] is False and values["alerts"] == ["failed"] and out.startswith(f"config file: {path}\n")
