"""Screenshots of the board and the inbox for docs/board.md, taken from a running `soc dev` (or `make run`).

    .venv/bin/python tools/screenshots.py --duty-password demo-... --clerk-password demo-...

signs in with the demo sign-ins `soc dev` printed (the duty officer on the board, a department's clerk on the
inbox) and writes the board at 1920x1080 (the wall) and 1366x768 (a laptop), and the inbox at 1366x768 and
390x844 (a phone), each as seen on that screen (the viewport, not the whole page), as PNGs of at most 256
colours (a screenshot of text and flat colours loses nothing visible and shrinks about threefold) named
`<page>-<width>x<height>-<date>.png` with the district's date. It drives Debian's Chromium like tests/e2e.
"""
from __future__ import annotations

import argparse
import io
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = [("board", "/", 1920, 1080), ("board", "/", 1366, 768), ("inbox", "/inbox", 1366, 768),
         ("inbox", "/inbox", 390, 844)]


def board_drawn(page) -> bool:
    return page.evaluate("() => Boolean(window.SOC_BOARD && window.SOC_BOARD.stats.snapshots >= 1)")


def inbox_drawn(page) -> bool:
    return page.locator("#cards > li, #watched > li, #empty:not([hidden])").count() > 0


def wait_until(check, page, timeout: float, what: str) -> None:
    # Polled with page.evaluate: wait_for_function evaluates a string in the page, which its CSP refuses.
    deadline = time.monotonic() + timeout
    while not check(page):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not drawn within {timeout:.0f} s")
        page.wait_for_timeout(100)


def shrink(png: bytes, path: Path) -> int:
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(path, optimize=True)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:6066", help="the worker's web address")
    parser.add_argument("--duty", default="duty", help="the duty officer's user name (board)")
    parser.add_argument("--duty-password", required=True)
    parser.add_argument("--clerk", default="flood", help="a department clerk's user name (inbox)")
    parser.add_argument("--clerk-password", required=True)
    parser.add_argument("--timezone", default="Asia/Shanghai", help="the district's time zone")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    signins = {"board": (args.duty, args.duty_password), "inbox": (args.clerk, args.clerk_password)}
    drawn = {"board": board_drawn, "inbox": inbox_drawn}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            for name, path, width, height in SHOTS:
                context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                              timezone_id=args.timezone)
                page = context.new_page()
                page.goto(args.url + path)
                user, password = signins[name]
                page.fill("#user", user)
                page.fill("#password", password)
                page.click("#signin-form button[type=submit]")
                expect(page.locator("#conn")).to_have_attribute("data-state", "connected", timeout=30_000)
                wait_until(drawn[name], page, 30, name)
                taken = datetime.now(ZoneInfo(args.timezone))
                target = args.out / f"{name}-{width}x{height}-{taken:%Y-%m-%d}.png"
                size = shrink(page.screenshot(), target)
                print(f"{taken:%Y-%m-%d %H:%M}  {target}  {size // 1024} KB")
                context.close()
        finally:
            browser.close()


if __name__ == "__main__":
    main()
