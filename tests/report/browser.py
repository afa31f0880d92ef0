"""Drive headless Chromium over the DevTools Protocol (CDP) to load a local HTML file.

``load_page`` starts Chromium with a fresh profile and ``--remote-debugging-port=0``, reads the
port from ``DevToolsActivePort`` in the profile, attaches to the page over a websocket (only to
127.0.0.1), and records console errors, uncaught exceptions, log errors and every network
request while the file loads. It then waits until the plotly figures have drawn, evaluates a
probe script, takes a full-page screenshot, and kills Chromium's process group in any case.
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

# Counts what the probe needs: sections, figure divs, and figure divs plotly has drawn into.
PROBE = """(() => {
  const figs = [...document.querySelectorAll('div.plotly-graph-div')];
  return JSON.stringify({
    sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
    absent: [...document.querySelectorAll('section[id]')]
              .filter(s => s.querySelector('.absent')).map(s => s.id),
    errors: [...document.querySelectorAll('.error')].map(e => e.textContent),
    figures: figs.length,
    drawn: figs.filter(f => f.classList.contains('js-plotly-plot')
                            && f.querySelector('svg.main-svg')).length,
    main_svg: document.querySelectorAll('svg.main-svg').length,
    traces: document.querySelectorAll('g.trace').length,
    plotly: typeof window.Plotly !== 'undefined' ? window.Plotly.version : null,
    xss: window.__xss === undefined ? null : window.__xss,
    title: document.title,
    height: document.documentElement.scrollHeight,
  });
})()"""


@dataclass
class PageResult:
    """What happened while a page loaded in Chromium."""

    probe: dict[str, Any]
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None


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
              height: int = 1000, timeout: float = 60.0) -> PageResult:
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
        # plotly draws asynchronously after load: wait until every figure div holds an SVG;
        # without plotly.js (a page that failed to load it) no figure will ever be drawn
        deadline = time.monotonic() + timeout
        while True:
            probe = json.loads(cdp.evaluate(PROBE))
            if (probe["drawn"] >= probe["figures"] or probe["plotly"] is None
                    or time.monotonic() > deadline):
                break
            time.sleep(0.2)
        time.sleep(0.3)  # let the last frame paint before the screenshot
        result = PageResult(probe=json.loads(cdp.evaluate(PROBE)))
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
