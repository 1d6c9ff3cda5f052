"""The action dialogs: resume retrying failed runs, refusals said once, nothing to clean, 80x24."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Static

from app.screens.confirm import ConfirmDialog

from tests.dashboard.conftest import DEAD_PID, native_doc, write_raw
from tests.dashboard.helpers import make_app, wait_for


def _table(app):
    from widgets.experiment_table import ExperimentTable

    return app.screen_stack[0].query_one(ExperimentTable)


async def _open(pilot, key: str, press: str) -> ConfirmDialog:
    app = pilot.app
    await wait_for(pilot, lambda: app.scan_complete, what="scan")
    _table(app).move_cursor_to_key(key)
    await pilot.press(press)
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="dialog")
    await pilot.pause()
    return app.screen


def _on_screen(widget) -> bool:
    """Whether the whole widget lies inside the terminal."""
    region, screen = widget.region, widget.screen.region
    return region.height > 0 and screen.contains_region(region)


async def test_a_failed_experiment_offers_resume_retrying_its_failed_runs(state_dir: Path):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await _open(pilot, "sweep-failed", "R")
        assert dialog.refusal is None, "only failed runs are left: retrying them is the resume"
        assert dialog.confirm_label == "Resume, retrying failed runs"
        assert any("1 failed to rerun" in line for line in dialog.lines)
        assert not any("--retry-failed" in line for line in dialog.lines)


async def test_pending_and_failed_runs_offer_both_resumes(state_dir: Path):
    write_raw(state_dir, native_doc("mixed", "interrupted", pid=DEAD_PID, done=1, failed=1))
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await _open(pilot, "mixed", "R")
        assert dialog.refusal is None and dialog.query_one("#confirm", Button)
        assert "retry failed" in str(dialog.query_one("#alternative", Button).label)
        assert any("Failed runs kept as failed: 1" in line and "(f)" in line for line in dialog.lines)
        chosen = []
        app._do_resume = lambda source, plan: chosen.append(plan)  # keep the test from launching a runner
        await pilot.press("f")
        await wait_for(pilot, lambda: bool(chosen), what="the retrying plan chosen")
        assert chosen[0].retry_failed and chosen[0].runs_failed_rerun == 1


async def test_a_refusal_is_said_once(state_dir: Path):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        for key, press in (("sweep-alive", "R"), ("sweep-alive", "S")):
            dialog = await _open(pilot, key, press)
            assert dialog.refusal
            text = "\n".join(str(s.render()) for s in dialog.query(Static))
            assert text.count(dialog.refusal) == 1, text
            assert not any(line.startswith("Refused") for line in dialog.lines)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="closed")


async def test_clean_up_with_nothing_to_clean_says_so(tmp_path: Path):
    root = tmp_path / "state"
    root.mkdir()
    write_raw(root, native_doc("done", "completed", pid=DEAD_PID, done=4))
    app = make_app(root, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        await pilot.press("C")
        await wait_for(pilot, lambda: any("nothing to clean up" in str(n.message) for n in app._notifications), what="notice")
        assert not isinstance(app.screen, ConfirmDialog)


async def test_dialog_buttons_stay_on_screen_at_80x24(state_dir: Path):
    for n in range(40):  # a long dry run: many failed runs' lines would push the buttons off
        write_raw(state_dir, native_doc(f"dead-{n:02d}", "running", pid=DEAD_PID))
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="clean-up dialog")
        dialog = app.screen
        await wait_for(pilot, lambda: _on_screen(dialog.query_one("#confirm")), what="buttons on screen")
        assert _on_screen(dialog.query_one("#cancel")) and _on_screen(dialog.query_one("#dialog-title"))
        body = dialog.query_one("#dialog-body")
        assert body.max_scroll_y > 0, "the body scrolls"
