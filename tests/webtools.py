"""Helpers of the browser tests: a loopback HTTP server, and Chromium driven by tests/web/driver.mjs.

Needs what `python3 dev.py test` installs: Debian's Chromium, and `npm ci` in tests/web
(MediaPipe's audio bundle and playwright-core). Without them a test fails and names the command;
it never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

WEB = ROOT / "tests" / "web"
BUNDLE = WEB / "node_modules" / "@mediapipe" / "tasks-audio"
CHROMIUM = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"]


def chromium() -> str:
    found = [p for p in [os.environ.get("DSPLUG_CHROMIUM"), *CHROMIUM] if p and os.access(p, os.X_OK)]
    if not found:
        pytest.fail("Chromium is not installed: run `python3 dev.py test` (as root it installs it) or `sudo apt-get install chromium`")
    return found[0]


def node_tools() -> str:
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "playwright-core").is_dir() or not BUNDLE.is_dir():
        pytest.fail("the web test's npm packages are missing: run `python3 dev.py test` or `npm ci --prefix tests/web` (Node.js >= 20)")
    return node


@contextmanager
def served(folder: Path):
    """``python -m http.server`` on a free loopback port, serving ``folder``."""
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = server.stdout.readline()
        port = re.search(r"port (\d+)", line)
        assert port, line
        yield f"http://127.0.0.1:{port.group(1)}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def drive(url: str, out: Path, *, wav: Path | None = None, screenshot: Path | None = None) -> dict:
    command = [node_tools(), str(WEB / "driver.mjs"), "--url", url, "--chromium", chromium(), "--out", str(out)]
    command += ["--wav", str(wav)] if wav else []
    command += ["--screenshot", str(screenshot)] if screenshot else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["state"]["error"] is None, (result["state"]["error"], result["console"])
    assert result["external"] == [], "the page fetched from another origin"
    return result


def heard_audio(captured: np.ndarray, played: np.ndarray, *, rate: int) -> tuple[np.ndarray, int]:
    """What the page heard: ``played`` moved by the delay (samples; negative: the page heard
    silence before the file) that best aligns it with the page's first window, within 0.5 s."""
    limit = rate // 2
    padded = np.concatenate([np.zeros(limit, np.float32), played, np.zeros(limit, np.float32)])
    scores = np.correlate(padded[: 2 * limit + captured.size], captured, mode="valid")
    delay = int(np.argmax(scores)) - limit
    heard = padded[limit + delay :][: played.size]
    return np.pad(heard, (0, played.size - heard.size)), delay
