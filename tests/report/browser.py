"""Drive headless Chromium over the DevTools Protocol (CDP) to load a local HTML file.

``load_page`` starts Chromium with a fresh profile and ``--remote-debugging-port=0``, reads the
port from ``DevToolsActivePort`` in the profile, attaches to the page over a websocket (only to
127.0.0.1), and records console errors, uncaught exceptions, log errors and every network
request while the file loads. It then evaluates a probe script, measures the boxes of the
elements asked for (``boxes``: CSS selectors), takes a screenshot of the first screen (the
viewport only) and of the full page, and kills Chromium's process group in any case.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]

# Counts what the probe needs: sections, figure divs, and figure divs holding drawn SVG.
PROBE = """(() => {
  const figs = [...document.querySelectorAll('div.figure')];
  return JSON.stringify({
    sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
    absent: [...document.querySelectorAll('section[id]')]
              .filter(s => s.querySelector(':scope > .absent')).map(s => s.id),
    errors: [...document.querySelectorAll('.error')].map(e => e.textContent),
    figures: figs.length,
    drawn: figs.filter(f => f.querySelector('svg')
                            && f.querySelector('svg').getBoundingClientRect().height > 0
                            && f.querySelector('polyline, polygon, rect, circle')).length,
    marks: document.querySelectorAll('div.figure polyline, div.figure polygon').length,
    scripts: document.querySelectorAll('script').length,
    xss: window.__xss === undefined ? null : window.__xss,
    title: document.title,
    height: document.documentElement.scrollHeight,
  });
})()"""

# For each selector: its box in the viewport, its text, whether it is displayed, and whether
# the element painted at the centre of its box is it (or inside it): nothing covers it.
BOXES = """((sels) => JSON.stringify(Object.fromEntries(sels.map(sel => {
  const e = document.querySelector(sel);
  if (!e) return [sel, null];
  const r = e.getBoundingClientRect(), st = getComputedStyle(e);
  const cx = r.left + Math.min(r.width / 2, 40), cy = r.top + r.height / 2;
  const hit = document.elementFromPoint(cx, cy);
  return [sel, {top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                text: e.innerText, shown: st.display !== 'none' && st.visibility !== 'hidden',
                on_top: !!hit && (hit === e || e.contains(hit))}];
}))))"""

# Decodes a PNG (base64) in the browser and measures its grey levels: over the whole image and
# inside each box {name: [left, top, right, bottom]}: mean, standard deviation, and the share
# of "ink" pixels (darker than 160 of 255, i.e. text or lines on the white page).
PIXELS = """(async (b64, boxes) => {
  const img = new Image();
  img.src = 'data:image/png;base64,' + b64;
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data, w = c.width, h = c.height;
  const stats = (x0, y0, x1, y1) => {
    x0 = Math.max(0, Math.floor(x0)); y0 = Math.max(0, Math.floor(y0));
    x1 = Math.min(w, Math.ceil(x1)); y1 = Math.min(h, Math.ceil(y1));
    let n = 0, s = 0, s2 = 0, ink = 0;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
      const i = (y * w + x) * 4, v = (d[i] + d[i + 1] + d[i + 2]) / 3;
      n++; s += v; s2 += v * v; if (v < 160) ink++;
    }
    const m = n ? s / n : 0;
    return {n: n, mean: m, std: n ? Math.sqrt(Math.max(0, s2 / n - m * m)) : 0,
            ink: n ? ink / n : 0};
  };
  return JSON.stringify({width: w, height: h, all: stats(0, 0, w, h),
    boxes: Object.fromEntries(Object.entries(boxes).map(([k, b]) => [k, stats(...b)]))});
})"""


@dataclass
class PageResult:
    """What happened while a page loaded in Chromium."""

    probe: dict[str, Any]
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    first_screen: Path | None = None
    boxes: dict[str, Any] = field(default_factory=dict)
    pixels: dict[str, Any] = field(default_factory=dict)


class _CDP:
    """Minimal synchronous CDP session on one websocket: send commands, collect events."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        from websockets.sync.client import connect

        # proxy=None: never route the local DevTools socket through an environment proxy
        self.ws = connect(ws_url, max_size=None, open_timeout=timeout, proxy=None)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"CDP {method} got no answer in {timeout} s")
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> dict | None:
        for ev in self.events:
            if ev["method"] == method:
                return ev
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return None
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        return None

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"probe failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    f = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited early with code {proc.returncode}")
        try:
            lines = f.read_text().split()
            if len(lines) >= 2:
                return int(lines[0]), lines[1]
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"chromium wrote no {f} within {timeout} s")


def _page_ws_url(port: int, timeout: float) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=left) as r:
                targets = json.loads(r.read())
        except OSError:  # a slow browser: ask again until the deadline
            targets = []
        pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise TimeoutError(f"chromium on port {port} listed no page target")


def _describe_console(params: dict) -> str:
    args = params.get("args", [])
    return " ".join(str(a.get("value", a.get("description", a.get("type")))) for a in args)


def load_page(html_file: Path, *, screenshot: Path | None = None, width: int = 1400,
              height: int = 1000, timeout: float = 60.0, first_screen: Path | None = None,
              boxes: tuple[str, ...] = ()) -> PageResult:
    """Open ``html_file`` in headless Chromium and report what happened (see module doc)."""
    url = Path(html_file).resolve().as_uri()
    profile = Path(tempfile.mkdtemp(prefix="qf-chromium-"))
    env = {**os.environ, "HOME": str(profile)}  # keep chromium's caches out of the real home
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    cdp = None
    try:
        # every wait is bounded by ``timeout`` only to fail a hung browser, never a slow one
        port, _ = _devtools_port(profile, proc, timeout=timeout)
        cdp = _CDP(_page_ws_url(port, timeout=timeout), timeout=timeout)
        for domain in ("Runtime", "Log", "Page", "Network"):
            cdp.send(f"{domain}.enable")
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        cdp.send("Page.navigate", {"url": url})
        if cdp.wait_event("Page.loadEventFired", timeout) is None:
            raise TimeoutError(f"{url} did not finish loading in {timeout} s")
        time.sleep(0.3)  # let the first frame paint before the screenshots
        result = PageResult(probe=json.loads(cdp.evaluate(PROBE)))
        if boxes:
            result.boxes = json.loads(cdp.evaluate(f"{BOXES[:-1]})({json.dumps(list(boxes))})"))
        if first_screen is not None:
            # the viewport only: what a reader sees before scrolling
            shot = cdp.send("Page.captureScreenshot", {"format": "png"}, timeout=60)
            first_screen.parent.mkdir(parents=True, exist_ok=True)
            first_screen.write_bytes(base64.b64decode(shot["data"]))
            result.first_screen = first_screen
            where = {k: [b["left"], b["top"], b["right"], b["bottom"]]
                     for k, b in result.boxes.items() if b}
            res = cdp.send("Runtime.evaluate", {
                "expression": f"{PIXELS}({json.dumps(shot['data'])}, {json.dumps(where)})",
                "awaitPromise": True, "returnByValue": True}, timeout=60)
            if "exceptionDetails" in res:
                raise RuntimeError(f"pixel probe failed: {res['exceptionDetails']}")
            result.pixels = json.loads(res["result"]["value"])
        if screenshot is not None:
            metrics = cdp.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = cdp.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000),
                         "scale": 1}}, timeout=60)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            result.screenshot = screenshot
        # a round trip: every event the page sent before its answer is now in cdp.events
        cdp.evaluate("0")
        for ev in cdp.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.console_errors.append(_describe_console(p))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                result.console_errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}")
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                result.exceptions.append(d.get("exception", {}).get("description")
                                         or d.get("text", "exception"))
            elif m == "Network.requestWillBeSent":
                result.requests.append(p.get("request", {}).get("url", ""))
        return result
    finally:
        if cdp is not None:
            try:
                cdp.send("Browser.close", timeout=5)
            except Exception:
                pass
            cdp.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        else:  # chromium's helpers may outlive the browser process
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(profile, ignore_errors=True)

