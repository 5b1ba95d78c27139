"""Headless Chromium from Debian's packages (``chromium``, ``chromium-driver``), driven by selenium with the
system chromedriver (selenium never downloads a driver). Fresh profile per browser; flags that keep it off
the network (no component updates, sync, QUIC or background fetches)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
         "--disable-component-update --disable-sync --window-size=1500,1100").split()


def chromium_missing() -> str | None:
    """Why no browser can start here (None when both packages are installed)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return f"missing {', '.join(missing)} (apt-get install chromium chromium-driver)" if missing else None


@contextmanager
def chromium():
    """A selenium WebDriver on headless Chromium that records the console (``driver.get_log('browser')``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    """Console errors and uncaught exceptions since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def first_contentful_paint_ms(driver, wait_s: float = 10.0) -> float | None:
    """The page's first-contentful-paint time (ms from navigation start), from the Paint Timing API; waits up
    to ``wait_s`` for the entry (a headless load can finish before the first frame is painted)."""
    entries = driver.execute_async_script(
        "const done = arguments[arguments.length - 1], t0 = Date.now();"
        "(function poll() { const e = performance.getEntriesByType('paint').filter(x => x.name === 'first-contentful-paint');"
        " if (e.length || Date.now() - t0 > arguments[0] * 1000) done(e.map(x => x.startTime)); else setTimeout(poll, 20); })();",
        wait_s)
    return float(entries[0]) if entries else None
