"""`K` stops a real runner from the dashboard (confirmed, SIGINT, exit 130, the row turns interrupted); read-only keys say why they do nothing."""

from __future__ import annotations

from pathlib import Path

from runtime.liveness import LocalProbe
from state.native import RunStatus

from tests.dashboard.helpers import make_app, wait_for
from tests.runtime.helpers import COUNTING_STUDY, cli_env, read_doc, start_expwatch, write_study
from tests.runtime.helpers import wait_for as wait_blocking


def _row_status(app, key: str) -> str | None:
    row = app.board.get(key)
    return getattr(row.entry, "status", None) if row is not None else None


async def test_stop_key_stops_a_real_runner(tmp_path: Path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="200", STEP_MIN_S="0.05", STEP_MAX_S="0.08")
    runner = start_expwatch("run", study, "--state-dir", state_dir, "--id", "keyed", cwd=tmp_path, env=env)
    try:
        wait_blocking(lambda: (d := read_doc(state_dir, "keyed")) and any(r.status is RunStatus.COMPLETED for r in d.runs),
                      what="the runner under way")
        app = make_app(state_dir, probe=LocalProbe())
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.scan_complete and _row_status(app, "keyed") == "running")
            app.main.table.move_cursor_to_key("keyed")
            await pilot.press("K")
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", what="the dialog")
            assert app.screen.refusal is None
            await pilot.press("y")
            await wait_for(pilot, lambda: runner.poll() is not None, timeout=30, what="the runner to exit")
            await wait_for(pilot, lambda: _row_status(app, "keyed") == "interrupted", timeout=30, what="the row interrupted")
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate(timeout=30)
    assert runner.returncode == 130
    assert read_doc(state_dir, "keyed").error_message.startswith("interrupted by SIGINT")


async def test_in_read_only_mode_the_changing_keys_say_so(tmp_path: Path, monkeypatch):
    from tests.dashboard.conftest import populate

    populate(tmp_path)
    app = make_app(tmp_path, read_only=True)
    notices: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, *a, **k: notices.append(str(message)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        for key in "RSKC":
            await pilot.press(key)
        await wait_for(pilot, lambda: len(notices) == 4, what="one notice per key")
        assert app.screen is app.screen_stack[0]
    assert set(notices) == {"read-only (observer) mode: nothing can be changed here"}
