"""The runs table on its own: lazy rendering of many runs, filter, reloads, sideways scroll, mouse."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from tests.inspector.harness import wait_for
from widgets.run_table import RunTable, build_run_table
from widgets.virtual_table import VirtualTable

SIZE = (80, 20)


def runs(count: int, *, wide: bool = False) -> list[dict[str, Any]]:
    statuses = ("completed", "failed", "pending")
    out = []
    for i in range(count):
        params: dict[str, Any] = {"batch_size": 2 ** (i % 6), "precision": ("bf16", "fp16")[i % 2]}
        if wide:
            params.update({f"p{n}": "x" * 20 for n in range(4)})
        out.append({"id_run": f"r-{i:05d}", "status": statuses[i % 3], "params": params, "attempt": 1})
    return out


class TableHost(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.chosen: list[str] = []

    def compose(self) -> ComposeResult:
        yield RunTable(id="runs")

    def on_virtual_table_row_chosen(self, event: VirtualTable.RowChosen) -> None:
        self.chosen.append(str(event.key))


async def test_ten_thousand_runs_render_only_the_lines_on_screen(monkeypatch):
    calls: list[str] = []
    original = RunTable._cells

    def counting(self: RunTable, row: Any) -> Any:
        calls.append(row.key)
        return original(self, row)

    monkeypatch.setattr(RunTable, "_cells", counting)
    app = TableHost()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RunTable)
        table.focus()
        table.set_data(build_run_table(runs(10_000)))
        await wait_for(pilot, lambda: "r-00000" in calls, what="first frame")
        assert table.total_rows == table.row_count == 10_000
        await pilot.press("end")
        await wait_for(pilot, lambda: "r-09999" in calls, what="last page")
        assert table.cursor_key == "r-09999"
        # The first screenful and the last one, nothing in between.
        assert len(set(calls)) <= 2 * SIZE[1]


async def test_filter_and_reload_keep_the_cursor_on_its_run():
    app = TableHost()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RunTable)
        table.set_data(build_run_table(runs(300)))
        table.move_cursor_to_key("r-00250")
        await pilot.pause()
        table.set_filter("FP16 completed")
        assert table.keys == [f"r-{i:05d}" for i in range(300) if i % 6 == 3]
        assert table.cursor_key not in (None, "r-00250")
        table.set_filter("")
        table.move_cursor_to_key("r-00249")
        table.set_filter("fp16")
        assert table.cursor_key == "r-00249" and table.row_count == 150
        await pilot.pause()
        top = table.scroll_y
        assert top > 0
        reloaded = runs(300)
        reloaded[249]["status"] = "running"
        table.set_data(build_run_table(reloaded))
        await pilot.pause()
        assert table.cursor_key == "r-00249"
        assert table.scroll_y == top
        assert table.data.rows[249].status == "running"
        table.set_filter("no-such-run")
        await pilot.pause()
        assert table.row_count == 0 and table.cursor_key is None
        assert "no runs match the filter" in table.render_line(1).text


async def test_a_table_wider_than_the_terminal_scrolls_sideways():
    app = TableHost()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RunTable)
        table.set_data(build_run_table(runs(5, wide=True)))
        await pilot.pause()
        width = table.scrollable_content_region.width
        assert table.virtual_size.width > width
        header = table.render_line(0).text
        assert header.startswith("status") and len(header) == width
        table.scroll_to(x=table.max_scroll_x, animate=False, immediate=True)
        await pilot.pause()
        assert table.render_line(0).text.rstrip().endswith("error")
        assert not table.render_line(1).text.startswith("completed")


async def test_click_moves_the_cursor_and_a_double_click_opens_the_run():
    app = TableHost()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RunTable)
        table.set_data(build_run_table(runs(10)))
        await pilot.pause()
        await pilot.click(RunTable, offset=(3, 3))
        assert table.cursor_key == "r-00002"
        await pilot.click(RunTable, offset=(3, 3), times=2)
        await wait_for(pilot, lambda: app.chosen == ["r-00002"], what="run chosen")
        await pilot.click(RunTable, offset=(3, 0))
        assert table.cursor_key == "r-00002"
