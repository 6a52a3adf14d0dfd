"""A page's time to first render in a real browser on a slow CPU: Debian's Chromium, driven by Playwright, with the
CPU throttled through the DevTools protocol (``Emulation.setCPUThrottlingRate``), as a reception PC might be.

The page is served by a threaded WSGI server on the loopback (the whole middleware stack, static files through
whitenoise, the benchmark's own database) to a browser signed in with the benchmark client's session. Each
figure is the median of several loads of the same URL in a fresh tab: first-contentful-paint from the Performance
API, the ends of DOMContentLoaded and load from its navigation entry, and (when asked) a mark the page's own script
made, in milliseconds.

Used by the calendar_week case's extras (benchmarks/cases/calendar.py); nothing here knows about the calendar.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import connections
from django.test import Client

from benchmarks.process_cpu import command_name, with_descendants

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CPU_SLOWDOWN = 4  # Emulation.setCPUThrottlingRate: 4 = four times slower than this machine
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Read after "load": the first contentful paint, the navigation's milestones and the page's own mark (if it was
# asked for: performance.mark(name) in the page's script), from the page's own clock.
TIMINGS = """(mark) => {
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  const nav = performance.getEntriesByType("navigation")[0];
  const marked = mark ? performance.getEntriesByName(mark)[0] : null;
  return {
    fcp: paint ? paint.startTime : null,
    dcl: nav ? nav.domContentLoadedEventEnd : null,
    load: nav ? nav.loadEventEnd : null,
    mark: marked ? marked.startTime : null,
  };
}"""


FIRST_PAINT_RECORDED = "() => performance.getEntriesByName('first-contentful-paint').length > 0"
FIRST_PAINT_TIMEOUT_MS = 10_000
BROWSER_DEADLINE_S = 240  # a whole measurement: a few seconds at the tiny size, under a minute at the full one


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def served() -> Iterator[str]:
    """This process's Django on a free loopback port, in a thread; yields its base URL."""
    application = get_wsgi_application()
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.daemon_threads = True
    server.set_app(application)
    thread = threading.Thread(target=server.serve_forever, name="render-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        connections.close_all()


def chromium_missing() -> str:
    """Why the browser cannot run here ("" when it can)."""
    return "" if os.path.exists(CHROMIUM) else f"Chromium not found at {CHROMIUM} (apt-get install chromium)"


def first_render(client: Client, path: str, *, time_zone: str, loads: int = 5, mark: str = "") -> dict[str, float]:
    """Median first-contentful-paint, DOMContentLoaded and load (ms) of ``path`` at CPU_SLOWDOWN, over ``loads``
    loads, for the user signed in on ``client``, and with ``mark`` the time of the page's first performance mark
    of that name ("mark"; a load without it is an error). One load first, unmeasured: the browser reports its
    zone. A browser that hangs is stopped after BROWSER_DEADLINE_S and tried once more, with a fresh one."""
    from playwright.sync_api import Error as PlaywrightError

    cookies = [
        {"name": name, "value": morsel.value, "domain": "127.0.0.1", "path": "/"}
        for name, morsel in client.cookies.items()
    ]
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop in this thread; the ORM runs in the server's
    try:
        for _attempt in range(2):
            with served() as base, driver_stopped_after(BROWSER_DEADLINE_S) as stopped:
                try:
                    return loads_measured(base + path, cookies, time_zone=time_zone, loads=loads, mark=mark)
                except PlaywrightError:
                    if not stopped.is_set():
                        raise
        raise RuntimeError(f"{path}: the browser hung twice (stopped after {BROWSER_DEADLINE_S} s each time)")
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@contextmanager
def driver_stopped_after(seconds: float) -> Iterator[threading.Event]:
    """Stop Playwright's driver (a node process below this one) if the block is still running after ``seconds``:
    Chromium then exits too (its pipe to the driver closes) and the waiting Playwright call raises instead of
    hanging. CI saw a fresh context's new_page() never return (microsoft/playwright#3939 and #4761 report the
    same, intermittently); no Playwright timeout covers new_page. The event tells that the block was stopped."""
    stopped = threading.Event()
    earlier = set(drivers())  # another's (a browser test's session-wide Playwright): never touched

    def stop() -> None:
        stopped.set()
        for pid in set(drivers()) - earlier:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield stopped
    finally:
        timer.cancel()


def drivers() -> list[int]:
    """Playwright drivers below this process ("node-MainThread"; the servers are python)."""
    return [pid for pid in with_descendants(os.getpid()) if command_name(pid).startswith("node")]


def loads_measured(
    url: str, cookies: list[dict[str, str]], *, time_zone: str, loads: int, mark: str
) -> dict[str, float]:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    figures: dict[str, list[float]] = {key: [] for key in ("fcp", "dcl", "load", "mark") if key != "mark" or mark}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(timezone_id=time_zone, viewport={"width": 1600, "height": 1000})
            context.add_cookies(cookies)  # type: ignore[arg-type]
            warm = context.new_page()
            warm.goto(url, wait_until="load")
            warm.wait_for_timeout(500)  # the zone's report and its one reload, if any
            warm.close()
            for _ in range(loads):
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
                page.goto(url, wait_until="load")
                try:
                    # On a throttled CPU the first paint can come after the load event (seen once in CI, on the
                    # tiny week): wait for its entry rather than read it at once.
                    page.wait_for_function(FIRST_PAINT_RECORDED, timeout=FIRST_PAINT_TIMEOUT_MS)
                except PlaywrightTimeoutError:
                    raise RuntimeError(f"{url}: the browser reported no first-contentful-paint") from None
                timings = page.evaluate(TIMINGS, mark)
                if mark and timings["mark"] is None:
                    raise RuntimeError(f"{url}: the page made no performance mark {mark!r}")
                for key in figures:
                    figures[key].append(float(timings[key]))
                cdp.detach()
                page.close()
            context.close()
        finally:
            with suppress(PlaywrightError):  # a stopped driver: nothing left to close
                browser.close()
    return {key: round(statistics.median(values), 1) for key, values in figures.items()}
