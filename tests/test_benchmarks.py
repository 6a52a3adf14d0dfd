"""The benchmark harness end to end, in a subprocess: it builds and migrates a database of its own, so no django_db.

Every registered case runs once at the tiny size, in one subprocess, on the suite's database vendor. The reset,
the checks count and the runs/warm-up defaults are checked in process, with fake cases that touch no database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import psycopg
import pytest
from psycopg import sql

from benchmarks import harness
from benchmarks.harness import Case
from tests.conftest import in_ci, process_stopped, run_python, subprocess_env

PROJECT_DIR = Path(__file__).resolve().parents[1]
NUMERIC_KEYS = (
    "median_s",
    "min_s",
    "max_s",
    "queries",
    "peak_mb",
    "floor_median_s",
    "ratio_to_floor",
    "runs",
    "warmup",
    "checks",
)
# The harness picks its own database (BENCH_DATABASE_URL) and no Redis (tasks eager, the cache in its process, so
# nothing it queues waits for a worker and nothing it caches meets the suite's keys); the size is the command line's.
BENCH_ENV = ("DATABASE_URL", "BENCH_DATABASE_URL", "REDIS_URL", "BENCH_REDIS_URL", "BENCH_SIZE")
TINY_TIMEOUT_S = 600


def run_benchmarks(*args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess[str]:
    # The harness chooses its own database; drop ours so nothing can point it at a real one.
    env = subprocess_env(drop=BENCH_ENV, **extra_env)
    return run_python(["-m", "benchmarks", *args], cwd=PROJECT_DIR, env=env, timeout=timeout)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def bench_database() -> Iterator[dict[str, str]]:
    """The suite's vendor for the benchmarks: when DATABASE_URL is PostgreSQL, a database of their own on the same
    server (its name + "_bench_tiny_<pid>"), made empty here and dropped afterwards; else the harness's own SQLite
    file."""
    url = os.environ.get("DATABASE_URL", "")
    if not url or dj_database_url.parse(url)["ENGINE"] != "django.db.backends.postgresql":
        yield {}
        return
    parts = urlsplit(url)
    # The process in the name: a second worker (or a second setup of this fixture) never races for the same name.
    name = parts.path.lstrip("/") + f"_bench_tiny_{os.getpid()}"
    server = parts._replace(path="/postgres", query="").geturl()

    def execute(statement: str) -> None:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL(statement).format(sql.Identifier(name)))

    execute("DROP DATABASE IF EXISTS {} WITH (FORCE)")
    execute("CREATE DATABASE {}")
    try:
        yield {"BENCH_DATABASE_URL": parts._replace(path="/" + name).geturl()}
    finally:
        execute("DROP DATABASE IF EXISTS {} WITH (FORCE)")


@dataclass(frozen=True)
class TinyRun:
    """Every case run once at the tiny size, in one subprocess: what it printed, and the file it wrote."""

    done: subprocess.CompletedProcess[str]
    output: Path
    vendor: str

    def results(self) -> dict[str, Any]:
        assert self.done.returncode == 0, self.done.stderr[-5000:]
        assert "Traceback" not in self.done.stderr, self.done.stderr[-5000:]
        data: dict[str, Any] = json.loads(self.output.read_text())
        return data


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, bench_database: dict[str, str]) -> TinyRun:
    """The tiny run, once for the tests of this module that read it (one xdist group: one worker)."""
    output = tmp_path_factory.mktemp("bench") / "tiny.json"
    output.write_text(json.dumps({"cases": {"other_case": {"median_s": 1.0}}, "env": {"old": True}}))
    args = ("--size", "tiny", "--runs", "1", "--warmup", "0", "--output", str(output))
    done = run_benchmarks(*args, timeout=TINY_TIMEOUT_S, **bench_database)
    return TinyRun(done, output, "postgresql" if bench_database else "sqlite")


# With the connection storms: gunicorn and the cases' connections, and a minute of both CPUs, one after the other.
@pytest.mark.xdist_group("fifty-connection-storms")
def test_every_case_runs_once_at_tiny_size_with_its_checks(tiny_run: TinyRun) -> None:
    from benchmarks.cases import CASES  # the names only: what each case builds depends on the size

    vendor, done = tiny_run.vendor, tiny_run.done
    data = tiny_run.results()
    assert set(data) == {"cases", "env"}
    env, cases = data["env"], data["cases"]
    assert cases.pop("other_case") == {"median_s": 1.0}  # the file's other entries stay; its env is replaced
    assert "old" not in env
    assert (env["size"], env["database_vendor"], env["runs"], env["warmup"]) == ("tiny", vendor, 1, 0)
    needs = {name: case.needs for name, case in CASES.items() if case.needs is not None and case.needs != vendor}
    assert env["skipped"] == {name: f"needs {harness.VENDOR_NAMES[needed]}" for name, needed in needs.items()}
    if vendor == "postgresql":
        assert env["skipped"] == {}  # every case really ran
    assert set(cases) == set(CASES) - set(needs)
    for name, entry in cases.items():
        assert entry["database_vendor"] == vendor, name  # each entry says where it was measured
        assert entry["checks"] >= 1, name
        assert (entry["runs"], entry["warmup"]) == (1, 0), name
        figures = {key: value for key, value in entry.items() if key != "database_vendor"}
        assert all(is_number(value) for value in figures.values()), (name, figures)
        assert set(NUMERIC_KEYS) - {"floor_median_s", "ratio_to_floor"} <= set(figures), name
        assert entry["min_s"] <= entry["median_s"] <= entry["max_s"], name
        assert entry["peak_mb"] >= 0, name
        if "floor_median_s" in entry:
            assert entry["floor_median_s"] > 0 and entry["ratio_to_floor"] > 0, name
        assert name in done.stdout
    home = cases["home_page"]
    # The documented shape of a case without extras; on a PostgreSQL of this machine, with the server's CPU per run.
    database_cpu = {"db_cpu_ms"} if vendor == "postgresql" else set()
    assert set(home) == {*NUMERIC_KEYS, "database_vendor", *database_cpu}
    assert home["queries"] > 0
    if vendor == "postgresql":
        assert home["db_cpu_ms"] > 0
        booking = cases["booking_http"]
        levels = [key.removesuffix("_requests") for key in booking if key.endswith("_requests")]
        assert levels
        for level in levels:  # what a booking request cost the server and the database, for docs/scaling.md
            assert booking[f"{level}_server_cpu_ms_per_request"] > 0, level
            assert booking[f"{level}_database_cpu_ms_per_request"] > 0, level
        # What a /healthz cost them: /proc counts CPU in clock ticks (10 ms), so the tiny size's few cheap requests
        # may read as no time at all, except the server's over the busiest level.
        busiest = max(levels, key=lambda level: booking[f"{level}_requests"])
        assert booking[f"{busiest}_healthz_server_cpu_ms_per_request"] > 0
        for level in levels:
            healthz = [booking.get(f"{level}_healthz_{part}_cpu_ms_per_request") for part in ("server", "database")]
            if None in healthz:
                assert f"{level}_cpu_bound_ratio" not in booking, level
                continue
            assert min(healthz) >= 0, level
            booking_cpu = (
                booking[f"{level}_server_cpu_ms_per_request"] + booking[f"{level}_database_cpu_ms_per_request"]
            )
            assert booking[f"{level}_cpu_bound_ratio"] == pytest.approx(sum(healthz) / booking_cpu, rel=1e-3), level
    for name, reason in env["skipped"].items():
        assert f"{name}: skipped ({reason})" in done.stdout


@pytest.mark.xdist_group("fifty-connection-storms")
def test_online_book_http_books_beside_reception_and_never_overbooks(tiny_run: TinyRun) -> None:
    data = tiny_run.results()
    if tiny_run.vendor != "postgresql":  # no skip: the harness reports it skipped, and says why
        assert data["env"]["skipped"]["online_book_http"] == "needs PostgreSQL"
        assert "online_book_http: skipped (needs PostgreSQL)" in tiny_run.done.stdout
        return
    from benchmarks.cases.online import BOOK_TINY

    entry = data["cases"]["online_book_http"]
    levels = [key.removesuffix("_overbooked") for key in entry if key.endswith("_overbooked")]
    assert levels == [f"c{clients}" for clients in BOOK_TINY.per_client]
    for level in levels:
        assert entry[f"{level}_overbooked"] == 0, level
        online, reception = entry[f"{level}_online_requests"], entry[f"{level}_reception_requests"]
        online_refused, reception_refused = entry[f"{level}_online_refused"], entry[f"{level}_reception_refused"]
        assert online == reception, level  # as many bookings from reception as code posts, into the same slots
        assert online_refused < online and reception_refused < reception, level  # each side took places...
        assert online_refused + reception_refused > 0, level  # ...and met the other in the same slots
        assert 0 < entry[f"{level}_p50_s"] <= entry[f"{level}_p95_s"], level
        assert 0 < entry[f"{level}_online_bookings_per_s"] < entry[f"{level}_bookings_per_s"], level
        assert entry[f"{level}_ratio_to_healthz"] > 0, level


@pytest.mark.xdist_group("fifty-connection-storms")
def test_fhir_slot_search_finds_the_free_slots_in_as_many_queries_whatever_their_number(tiny_run: TinyRun) -> None:
    entry = tiny_run.results()["cases"]["fhir_slot_search"]
    assert 0 < entry["short_free_slots"] < entry["free_slots"] < entry["slots_in_window"]  # some booked
    assert entry["queries"] == entry["short_queries"] > 0  # checked by the case too: it fails otherwise
    assert entry["entries"] > entry["free_slots"]  # the includes came along
    assert entry["p95_s"] > 0 and entry["min_s"] > 0  # p95: the run's own timings, taken inside the harness's
    assert entry["checks"] == 2


@pytest.mark.xdist_group("fifty-connection-storms")
def test_fhir_book_http_books_through_the_api_and_never_overbooks(tiny_run: TinyRun) -> None:
    data = tiny_run.results()
    if tiny_run.vendor != "postgresql":  # no skip: the harness reports it skipped, and says why
        assert data["env"]["skipped"]["fhir_book_http"] == "needs PostgreSQL"
        assert "fhir_book_http: skipped (needs PostgreSQL)" in tiny_run.done.stdout
        return
    from benchmarks.cases.fhir import BOOK_TINY

    entry = data["cases"]["fhir_book_http"]
    levels = [key.removesuffix("_overbooked") for key in entry if key.endswith("_overbooked")]
    assert levels == [f"c{clients}" for clients in BOOK_TINY.per_client]
    for (clients, per_client), level in zip(BOOK_TINY.per_client.items(), levels, strict=True):
        assert entry[f"{level}_overbooked"] == 0, level
        assert entry[f"{level}_requests"] == clients * per_client, level
        assert entry[f"{level}_refused"] < entry[f"{level}_requests"], level
        assert 0 < entry[f"{level}_p50_s"] <= entry[f"{level}_p95_s"], level
        assert entry[f"{level}_bookings_per_s"] > 0 and entry[f"{level}_ratio_to_healthz"] > 0, level
    assert entry[f"{levels[-1]}_refused"] > 0  # its clients met in a group slot: more requests than places


def test_a_tiny_run_never_writes_the_full_size_results(tmp_path: Path) -> None:
    done = run_benchmarks("home_page", "--size", "tiny", "--output", str(harness.DEFAULT_OUTPUT))
    assert done.returncode != 0
    assert "full-size figures" in done.stderr


def test_unknown_case_exits_2_and_lists_the_known_cases(tmp_path: Path) -> None:
    output = tmp_path / "r.json"
    done = run_benchmarks("no_such_case", "--output", str(output))
    assert done.returncode == 2
    assert "home_page" in done.stdout + done.stderr
    assert not output.exists()


def test_reset_runs_untimed_before_every_call_of_run_and_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "count_queries", lambda fn: (fn(), 0)[1])  # no database here
    calls: list[str] = []

    def record(name: str, pause: float = 0.0) -> Callable[[list[str]], None]:
        def call(log: list[str]) -> None:
            log.append(name)
            time.sleep(pause)

        return call

    case = Case("fake", lambda: calls, run=record("run"), floor=record("floor"), reset=record("reset", pause=0.2))
    result = harness.measure(case, runs=2, warmup=1)

    # Warm-up, then 2 interleaved timed runs, then the query-count and memory runs; one reset at the end.
    assert calls == ["reset", "run", "reset", "floor"] * 3 + ["reset", "run"] * 2 + ["reset"]
    assert result["max_s"] < 0.1  # the 0.2 s reset is not in the timings
    assert result["floor_median_s"] < 0.1
    assert (result["runs"], result["warmup"]) == (2, 1)


def test_a_case_declares_its_runs_and_warmup_and_the_command_line_overrides_them() -> None:
    case = Case("fake", lambda: None, run=lambda state: None, runs=3, warmup=0)
    assert harness.runs_and_warmup(case, runs=None, warmup=None) == (3, 0)
    assert harness.runs_and_warmup(case, runs=5, warmup=2) == (5, 2)
    plain = Case("plain", lambda: None, run=lambda state: None)
    assert harness.runs_and_warmup(plain, runs=None, warmup=None) == (harness.DEFAULT_RUNS, harness.DEFAULT_WARMUP)


def test_a_case_check_runs_untimed_once_and_the_checks_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "count_queries", lambda fn: (fn(), 0)[1])  # no database here
    calls: list[str] = []

    def run(log: list[str]) -> None:
        log.append("run")
        harness.checked()

    def check(log: list[str]) -> None:
        log.append("check")
        time.sleep(0.2)
        harness.checked()

    harness.checked()  # outside a measurement: counted nowhere
    with harness.checks_counted() as checks:
        result = harness.measure(Case("fake", lambda: calls, run=run, check=check), runs=2, warmup=1)
        count = checks()

    # Warm-up, 2 timed runs, the query-count and memory runs, then the check.
    assert calls == ["run"] * 5 + ["check"]
    assert count == 6
    assert result["max_s"] < 0.1  # the 0.2 s check is not in the timings


def test_each_family_is_sized_by_the_chosen_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "_size", None)
    monkeypatch.delenv(harness.SIZE_ENV, raising=False)
    assert harness.sized("full", "tiny") == "full"
    monkeypatch.setenv(harness.SIZE_ENV, "tiny")
    assert harness.sized("full", "tiny") == "tiny"
    monkeypatch.setenv(harness.SIZE_ENV, "huge")
    with pytest.raises(ValueError):
        harness.size_name()


def test_calendar_week_records_its_bytes_and_its_first_paint_in_chromium(tiny_run: TinyRun) -> None:
    entry = tiny_run.results()["cases"]["calendar_week"]
    assert entry["html_bytes"] > 0 and entry["slots"] > 0
    assert entry["html_bytes_per_slot"] == round(entry["html_bytes"] / entry["slots"], 1)
    if "first_contentful_paint_ms" not in entry and not in_ci():
        pytest.skip("no Chromium here: the case printed why")
    assert entry["render_cpu_slowdown"] == 4 and entry["render_loads"] >= 1
    assert entry["first_contentful_paint_ms"] > 0 and entry["load_ms"] > 0
    assert 0 < entry["slots_drawn_ms"] <= entry["load_ms"]  # calendar.js draws the slots before the page is loaded


@pytest.mark.xdist_group("fifty-connection-storms")
def test_booking_bound_measures_the_form_beside_bookings_without_rules(tiny_run: TinyRun) -> None:
    data = tiny_run.results()
    if tiny_run.vendor != "postgresql":
        assert data["env"]["skipped"]["booking_bound"] == "needs PostgreSQL"
        return
    from benchmarks.cases.booking_bound import VARIANTS

    entry = data["cases"]["booking_bound"]
    assert entry["checks"] >= len(VARIANTS)  # every variant's run checked: all booked, none overbooked
    for variant in VARIANTS:
        assert entry[f"{variant}_bookings_per_s"] > 0, variant
        assert entry[f"{variant}_ratio_to_healthz"] == pytest.approx(
            entry[f"{variant}_bookings_per_s"] / entry["healthz_per_s"], rel=1e-2
        ), variant
        assert entry[f"{variant}_server_cpu_ms_per_request"] > 0, variant
    assert "booking_bound (gunicorn, PostgreSQL" in tiny_run.done.stdout


def test_cpu_spent_drops_a_process_that_exits_between_readings_instead_of_going_negative() -> None:
    """CI failed once with a negative database CPU per request: the sum over every `postgres` process fell when
    another test's backend exited mid-run. Real processes here: a child that burns CPU, then exits."""
    from benchmarks.http_load import cpu_spent, read_cpu

    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ninput()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while (read_cpu([burner.pid]).get(burner.pid, 0) < 250_000_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        before = read_cpu([burner.pid, os.getpid()])
        assert before[burner.pid] >= 250_000_000  # it had its CPU before the first reading
    finally:
        burner.communicate(b"\n", timeout=10)
    end = time.process_time() + 0.05
    while time.process_time() < end:  # this process spends a little meanwhile
        pass
    after = read_cpu([burner.pid, os.getpid()])
    assert burner.pid not in after
    spent = cpu_spent(before, after)
    assert spent >= 0
    assert spent <= 1_000_000_000  # this process's own few ticks, not minus the child's 300 ms
    late = {**after, 999_999_999: 40_000_000}  # a process that started after the first reading counts whole
    assert cpu_spent(before, late) == spent + 40_000_000


# A Playwright that another test keeps open below this process (pytest-playwright's, in the same xdist worker), in
# a child: it waits for a line, then proves its driver still works.
ELSEWHERE = """
import sys
from playwright.sync_api import sync_playwright
with sync_playwright() as playwright:
    print("started", flush=True)
    sys.stdin.readline()
    browser = playwright.chromium.launch(executable_path=sys.argv[1], args=["--no-sandbox", "--disable-gpu"])
    print(browser.new_page().evaluate("2 + 2"), flush=True)
    browser.close()
"""


def in_own_thread(work: Callable[[], Any]) -> Any:
    """Playwright's sync API, in a thread of its own: never inside a loop another test's Playwright left here."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result(timeout=120)


def test_a_browser_that_hangs_is_stopped_at_the_deadline_and_its_call_raises() -> None:
    """CI once waited 25 minutes on a Chromium whose new_page() never returned. The first-paint measurement runs
    under driver_stopped_after, which stops the driver it started at the deadline (never another's); the waiting
    call then raises (render.first_render tries once more). Real browsers here, one kept busy past the deadline."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from benchmarks import render

    def hung() -> tuple[bool, float]:
        started = time.monotonic()
        with render.driver_stopped_after(3) as stopped, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=render.CHROMIUM, args=render.CHROMIUM_ARGS)
            page = browser.new_page()
            with pytest.raises(PlaywrightError):
                page.wait_for_timeout(60_000)  # as long as a hang, for this test
        return stopped.is_set(), time.monotonic() - started

    def in_time() -> tuple[bool, int]:
        with render.driver_stopped_after(30) as stopped, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=render.CHROMIUM, args=render.CHROMIUM_ARGS)
            answer = browser.new_page().evaluate("1 + 1")
            browser.close()
        return stopped.is_set(), answer

    elsewhere = subprocess.Popen(
        [sys.executable, "-c", ELSEWHERE, render.CHROMIUM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert elsewhere.stdout is not None and elsewhere.stdin is not None
        assert elsewhere.stdout.readline().strip() == "started"
        before = set(render.drivers())
        assert before  # the other test's driver
        stopped, took_s = in_own_thread(hung)
        assert stopped and took_s < 30
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and set(render.drivers()) != before:
            time.sleep(0.1)
        assert set(render.drivers()) == before  # the stopped one gone, the other's untouched
        elsewhere.stdin.write("go\n")
        elsewhere.stdin.flush()
        assert elsewhere.stdout.readline().strip() == "4"  # and still working
    finally:
        process_stopped(elsewhere)
    assert in_own_thread(in_time) == (False, 2)  # in time: nothing stopped


def test_a_benchmark_process_that_hangs_fails_its_test_with_its_stacks(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        run_python(
            ["-c", "import time\ndef stuck_here():\n    time.sleep(600)\nstuck_here()"],
            cwd=tmp_path,
            env=subprocess_env(),
            timeout=2,
        )
    assert "still ran after 2 s" in str(failed.value)
    assert "stuck_here" in str(failed.value)  # the stack names where it hung


def test_the_stacks_of_a_hung_grandchild_are_printed_too(tmp_path: Path) -> None:
    """The scale run starts the harness as its own child: a hang there shows the harness's stack, not only the
    waiting parent's; and what they leave running (here a plain `sleep`, as a browser or a gunicorn would be) is
    stopped with them."""
    child = "import time\ndef grandchild_stuck():\n    time.sleep(600)\ngrandchild_stuck()"
    sleeper = tmp_path / "sleeper.pid"
    parent = (
        "import subprocess, sys\n"
        f"open({str(sleeper)!r}, 'w').write(str(subprocess.Popen(['sleep', '600']).pid))\n"
        f"subprocess.run([sys.executable, '-c', {child!r}])"
    )
    with pytest.raises(pytest.fail.Exception) as failed:
        run_python(["-c", parent], cwd=tmp_path, env=subprocess_env(), timeout=3)
    assert "grandchild_stuck" in str(failed.value)
    stat = Path(f"/proc/{sleeper.read_text()}/stat")
    deadline = time.monotonic() + 10
    while stat.exists() and stat.read_text().rpartition(")")[2].split()[0] not in {"Z", "X"}:
        assert time.monotonic() < deadline, "the sleeper outlived the test"
        time.sleep(0.1)
