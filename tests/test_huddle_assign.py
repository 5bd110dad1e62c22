"""The huddle page's reason dialog clicked in real headless Chromium, the correction stored in InfluxDB.

tests/test_huddle_page.py serves the page over four hours of the demo line whose jams have no reason
(unassigned stops); here Chromium is driven over the DevTools protocol (CDP, through the `websockets`
client: no browser download, Debian's `chromium`). The test taps the newest unassigned constraint stop
with a mouse event, types a wrong token (the page says it was refused and forgets it), then the right
one, taps a reason: the correction is in measurement `reason_correction` at the stop's middle, by
"huddle page", the losses API shows the stop corrected, and the page's list no longer holds it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from test_huddle_page import CHROMIUM_FLAGS, TOKEN, _back, chromium, served  # noqa: F401 - the fixture

from shopfloor.store import quote_string

websockets = pytest.importorskip("websockets.sync.client")
pytestmark = pytest.mark.servers


class Page:
    """One Chromium tab over CDP: evaluate JavaScript, click at an element's centre, type text."""

    def __init__(self, browser: str, profile: Path):
        flags = [flag for flag in CHROMIUM_FLAGS if not flag.startswith("--virtual-time-budget")]
        self.process = subprocess.Popen([browser, *flags, f"--user-data-dir={profile}",
                                         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                                         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                pytest.fail("chromium did not open its DevTools port in 30 s")
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(target for target in targets if target["type"] == "page")
        self.exits = contextlib.ExitStack()
        self.socket = self.exits.enter_context(
            websockets.connect(page["webSocketDebuggerUrl"], max_size=None, proxy=None))
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == number:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, what: str, timeout_s: float = 60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"the page did not show {what} in {timeout_s:.0f} s")

    def click(self, selector: str) -> None:
        """A real mouse press and release at the centre of the first element `selector` matches."""
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                      f".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        self.js(f"document.querySelector({json.dumps(selector)}).value = ''")
        self.call("Input.insertText", text=text)

    def close(self) -> None:
        if hasattr(self, "exits"):
            self.exits.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _corrections(store, plant: str) -> list[dict]:
    return store.query(f'SELECT "reason", "by", "station" FROM "reason_correction" WHERE plant = '
                       f"{quote_string(plant)}").rows()


def test_a_tap_in_the_reason_dialog_stores_a_correction(served, tmp_path):  # noqa: F811 - the fixture
    url, store, plant, plan, _ = served
    browser = chromium()
    page = Page(browser, tmp_path / "profile")
    try:
        page.call("Page.enable")
        page.call("Page.navigate", url=f"{url}/huddle?line=l1&back={_back(plant, plan)}")
        # `losses` is the page's state, there once its script ran
        count = page.wait("typeof losses !== 'undefined' && losses.body && "
                          "losses.body.unassigned_stops.length", "unassigned stops")
        page.wait("document.querySelectorAll('#stops button').length", "the stop buttons")
        stops = page.js("losses.body.unassigned_stops")
        newest = max(stops, key=lambda stop: stop["start"])  # the list shows the newest first
        assert _corrections(store, plant.plant) == []

        page.click("#stops button")
        title = page.wait("!document.getElementById('assign').hidden && "
                          "document.getElementById('assign-title').textContent", "the reason dialog")
        assert title.startswith(f"{newest['station']} {newest['kind']} ")
        reason = page.js("document.querySelector('#assign-reasons button').textContent").replace(" ", "_")
        page.type("#assign-token", "not-the-token")
        page.click("#assign-reasons button")
        assert "token refused" in page.wait("document.getElementById('assign-message').textContent",
                                            "the refusal")
        assert page.js("sessionStorage.getItem('shopfloor-api-token')") is None  # refused: forgotten
        assert _corrections(store, plant.plant) == []

        page.type("#assign-token", TOKEN)
        page.click("#assign-reasons button")
        page.wait("document.getElementById('assign').hidden", "the dialog closing")
        stored = _corrections(store, plant.plant)
        assert [(row["station"], row["reason"], row["by"], row["time"]) for row in stored] == [
            (newest["station"], reason, "huddle page", round((newest["start"] + newest["end"]) / 2))]
        page.wait(f"losses.body && losses.body.unassigned_stops.length === {count - 1} && "
                  f"losses.body.corrections.length === 1", "the corrected stop")
        corrected = page.js("losses.body.corrections[0]")
        assert (corrected["start"], corrected["reason"], corrected["corrected"]) == (
            newest["start"], reason, True)
        assert page.js("sessionStorage.getItem('shopfloor-api-token')") == TOKEN  # asked once, kept
    finally:
        page.close()
