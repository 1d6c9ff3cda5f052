"""A headless Chromium driven through its DevTools protocol: just enough to load a page and watch it.

textual-serve draws the terminal on a canvas, so the page's text is not in its
DOM: what the browser received over the app's websocket (the terminal output)
is read from the protocol's ``Network.webSocketFrameReceived`` events instead,
and keys go in through ``Input.dispatchKeyEvent`` as a user's would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
    "--window-size=1280,800",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab: commands by name, and the text of every websocket frame the page received so far."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.received: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = message.json()
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            elif data.get("method") == "Network.webSocketFrameReceived":
                frame = data["params"]["response"]
                payload = frame["payloadData"]
                if frame.get("opcode") == 2:
                    payload = base64.b64decode(payload).decode("utf-8", "replace")
                self.received.append(payload)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        await self._ws.send_json({"id": self._next, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def text(self) -> str:
        return "".join(self.received)

    async def wait_for_text(self, *words: str, timeout: float) -> float:
        """Seconds until every word has been received (AssertionError past ``timeout``)."""
        started = time.monotonic()
        while not all(w in self.text() for w in words):
            if time.monotonic() - started > timeout:
                missing = [w for w in words if w not in self.text()]
                raise AssertionError(f"the page did not receive {missing} within {timeout}s")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def press(self, key: str) -> None:
        """A printable key, as typing it would send it."""
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=key, text=key if kind == "keyDown" else "")

    async def click(self, x: int, y: int) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def open_page(url: str) -> AsyncIterator[Page]:
    """A fresh Chromium (its own profile folder) with ``url`` loading; everything ends with the block."""
    binary = chromium_binary()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="expwatch-chromium-") as profile:
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"chromium did not start (exit {proc.poll()})")
                await asyncio.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json") as answer:
                    target = next(t for t in await answer.json() if t["type"] == "page")
                async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.call("Network.enable")
                    await page.call("Page.enable")
                    await page.call("Page.navigate", url=url)
                    try:
                        yield page
                    finally:
                        page._reader.cancel()
        finally:
            _end_group(proc)


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """The browser and its helpers (zygote, GPU, crash handler), which still write into the profile
    folder after the browser itself exits: the folder is removed only once the whole group is gone."""
    for signum, seconds in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=seconds)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
