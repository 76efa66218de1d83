"""Opens an unlearning report in a real headless browser and checks what it shows.

Starts Chromium headless (no network: the page must need none), loads the HTML
file written by :func:`keras_forget.report` through the DevTools protocol over
a pipe (no Python package beyond the standard library), and checks in the
rendered page that

* the metric table is there, with a header and at least one method row;
* every image has finished loading and decoded to a picture of non-zero size;
* nothing was fetched from outside the file (every image is a ``data:`` URI).

Needs a Chromium binary. On Debian: ``apt-get install chromium-headless-shell``
(or ``chromium``); pass another with ``--browser``.

    python benchmarks/check_report_renders.py REPORT.html [--screenshot PAGE.png]

Prints what it found and exits 0 if every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")

#: Runs in the page once it has loaded; returns what the checks read.
PROBE = """
new Promise(done => {
  const look = () => {
    const images = Array.from(document.images).map(i => ({
      alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
      inline: i.src.startsWith("data:image/png;base64,")}));
    const table = document.querySelector("table.metrics");
    done({
      title: document.title,
      images,
      header: table ? Array.from(table.querySelectorAll("thead th")).map(t => t.textContent) : [],
      rows: table ? table.querySelectorAll("tbody tr").length : 0,
      height: document.documentElement.scrollHeight,
    });
  };
  if (document.readyState === "complete") look(); else window.addEventListener("load", look);
})
"""


def _pipe_ends(read_end: int, write_end: int) -> None:
    """In the child: the browser's command pipe on fd 3 and its reply pipe on fd 4."""
    read_end, write_end = os.dup(read_end), os.dup(write_end)  # out of the way of 3 and 4
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)


class Browser:
    """A headless Chromium driven over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, binary: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="kf-browser-")
        self._process = subprocess.Popen(
            [binary, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", f"--user-data-dir={self._profile}", "about:blank"],
            pass_fds=(3, 4),  # kept open in the child once _pipe_ends() has set them
            preexec_fn=lambda: _pipe_ends(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next, self._buffer = 0, b""

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Sends one command and returns its result (events in between are skipped)."""
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed its pipe (did it start?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._profile, ignore_errors=True)


def render(binary: str, page: pathlib.Path, screenshot: str | None) -> dict:
    """Loads ``page`` and returns what :data:`PROBE` found in it."""
    browser = Browser(binary)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = session["sessionId"]
        browser.send("Page.enable", session=session)
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        found = browser.send(
            "Runtime.evaluate",
            {"expression": PROBE, "awaitPromise": True, "returnByValue": True},
            session=session,
        )["result"]["value"]
        if screenshot:
            shot = browser.send(
                "Page.captureScreenshot", {"captureBeyondViewport": True}, session=session
            )
            pathlib.Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        return found
    finally:
        browser.close()


def failures(found: dict) -> list[str]:
    """What is wrong with the rendered page (empty: nothing)."""
    out = []
    if len(found["header"]) < 3 or found["rows"] < 1:
        out.append(f"metric table: {len(found['header'])} columns, {found['rows']} rows")
    if not found["images"]:
        out.append("no image")
    for image in found["images"]:
        if not (image["complete"] and image["width"] > 0 and image["height"] > 0):
            out.append(f"image {image['alt']!r} did not decode ({image})")
        if not image["inline"]:
            out.append(f"image {image['alt']!r} is not an inline PNG")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="the .html file written by keras_forget.report")
    parser.add_argument("--browser", help="Chromium binary (default: the first found)")
    parser.add_argument("--screenshot", help="also save a full-page PNG here")
    args = parser.parse_args(argv)
    binary = args.browser or next(filter(None, map(shutil.which, BROWSERS)), None)
    if binary is None:
        print("no Chromium found: apt-get install chromium-headless-shell", file=sys.stderr)
        return 2
    found = render(binary, pathlib.Path(args.report), args.screenshot)
    print(f"{args.report}: title {found['title']!r}, page height {found['height']} px")
    print(f"metric table: {len(found['header'])} columns, {found['rows']} method rows")
    for image in found["images"]:
        print(f"image {image['alt']!r}: {image['width']}x{image['height']} px, "
              f"loaded={image['complete']}, inline={image['inline']}")  # fmt: skip
    problems = failures(found)
    print(
        "\n".join(f"FAILED: {p}" for p in problems) if problems else "rendered: all checks passed"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
