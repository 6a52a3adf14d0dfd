"""Timing machinery: a database of the benchmarks' own, warm-up, timed runs, query count and peak memory.

Nothing here may load the Django settings before ``dedicated_database()`` has pointed DATABASE_URL
elsewhere: the developer's own database is never touched.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import dj_database_url
import django
from django.conf import settings
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext

from benchmarks.process_cpu import task_cpu_ns

S = TypeVar("S")
T = TypeVar("T")
Figures = dict[str, float | int]  # what measure() finds
Result = dict[str, float | int | str]  # an entry of results.json: the figures, extras and the database

SETTINGS_MODULE = "clinic.settings"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
DEFAULT_RUNS = 15
DEFAULT_WARMUP = 1
MB = 1024 * 1024
SIZES = ("full", "tiny")
SIZE_ENV = "BENCH_SIZE"
VENDOR_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


@dataclass(frozen=True)
class Case(Generic[S]):
    """One benchmark. ``setup`` runs once, untimed, and returns the state that ``run`` and ``floor`` take.

    ``floor`` is optional: the same work done the simplest possible way, timed beside ``run``.
    ``reset`` is optional: it puts the database back, untimed, before every call of ``run`` and ``floor`` (warm-up,
    timed, query-count and memory runs alike) and once at the end.
    ``runs`` and ``warmup`` are the case's own defaults; --runs and --warmup on the command line override them.
    ``check`` is optional: called once, untimed, after the timed runs, to prove the case did what it should; it
    (like every check a case runs in its setup, run, reset or extras) calls ``checked()`` when it passes.
    ``needs`` is optional: the database vendor the case must run on (e.g. "postgresql"); elsewhere the harness
    skips it and says so.
    """

    name: str
    setup: Callable[[], S]
    run: Callable[[S], object]
    floor: Callable[[S], object] | None = None
    reset: Callable[[S], object] | None = None
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    # Figures beyond the one median (e.g. latencies per number of clients), added to the case's entry.
    extras: Callable[[Result], Result] | None = None
    check: Callable[[S], object] | None = None
    needs: str | None = None


# --- Sizes ----------------------------------------------------------------------------

_size: str | None = None


def choose_size(name: str) -> None:
    """Choose the size, once, before the cases are imported: they read it when they are defined."""
    global _size
    if name not in SIZES:
        raise ValueError(f"unknown size {name!r}: one of {', '.join(SIZES)}")
    if "benchmarks.cases" in sys.modules and name != size_name():
        raise RuntimeError(f"the cases were already defined at size {size_name()!r}")
    _size = name


def size_name() -> str:
    """The size chosen by ``choose_size`` (--size), else BENCH_SIZE, else "full"."""
    name = _size or os.environ.get(SIZE_ENV) or "full"
    if name not in SIZES:
        raise ValueError(f"{SIZE_ENV}={name!r}: one of {', '.join(SIZES)}")
    return name


def sized(full: T, tiny: T) -> T:
    """A case family's sizes: ``full`` (what results.json reports) or ``tiny`` (every case run once, quickly)."""
    return tiny if size_name() == "tiny" else full


# --- Checks ---------------------------------------------------------------------------

_check_counts: list[int] = []  # one counter per case being measured (innermost last)


def checked() -> None:
    """Record that a check of the case being measured ran and passed (nothing outside a measurement)."""
    if _check_counts:
        _check_counts[-1] += 1


@contextmanager
def checks_counted() -> Iterator[Callable[[], int]]:
    """Count the ``checked()`` calls inside: yields a function giving the count so far."""
    _check_counts.append(0)
    depth = len(_check_counts)
    try:
        yield lambda: _check_counts[depth - 1]
    finally:
        _check_counts.pop()


# --- The database ---------------------------------------------------------------------


@contextmanager
def dedicated_database() -> Iterator[str]:
    """Point DATABASE_URL at the benchmarks' own database (BENCH_DATABASE_URL, else a temporary SQLite file).

    Must run before the settings are loaded. Also: DEBUG off (production-like timings, no query log) and no
    Redis unless BENCH_REDIS_URL is given, so that eager tasks and the cache stay inside this process.
    """
    if settings.configured:
        raise RuntimeError("Django settings were loaded before the benchmark database was chosen.")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ["DEBUG"] = "0"
    os.environ.pop("REDIS_URL", None)
    if os.environ.get("BENCH_REDIS_URL"):
        os.environ["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]

    bench_url = os.environ.get("BENCH_DATABASE_URL", "")
    if bench_url and bench_url == os.environ.get("DATABASE_URL"):
        raise SystemExit("BENCH_DATABASE_URL equals DATABASE_URL: give the benchmarks a database of their own.")
    with tempfile.TemporaryDirectory(prefix="clinic-bench-") as tmp:
        url = bench_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        os.environ["DATABASE_URL"] = url
        try:
            yield url
        finally:
            connections.close_all()


def prepare_django(url: str) -> str:
    """Check that Django (already set up) is on ``url``, migrate and seed the demo clinics; return the vendor."""
    expected = dj_database_url.parse(url)["NAME"]
    actual = settings.DATABASES[DEFAULT_DB_ALIAS]["NAME"]
    if str(actual) != str(expected):
        raise RuntimeError(f"Refusing to benchmark: the default database is {actual!r}, expected {expected!r}.")
    call_command("migrate", verbosity=0)
    call_command("seed_demo", quiet=True)
    return connections[DEFAULT_DB_ALIAS].vendor


# --- Measuring ------------------------------------------------------------------------


def elapsed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def count_queries(fn: Callable[[], object]) -> int:
    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as captured:
        fn()
    return len(captured)


def database_backend_pid() -> int | None:
    """The PostgreSQL server process serving this connection, when it runs on this machine (its CPU is readable in
    /proc) and the case's setup has opened the connection (psycopg knows the pid: no query); None on SQLite, a
    remote server or a case that never used the database."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql" or connection.connection is None:
        return None
    host = connection.settings_dict.get("HOST") or ""
    if host not in ("", "localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return None
    pid = connection.connection.info.backend_pid
    return pid if task_cpu_ns(pid) is not None else None


def peak_memory_mb(fn: Callable[[], object]) -> float:
    """Peak Python allocations of one call, in MB (tracemalloc; kept apart from the timed runs)."""
    gc.collect()
    already_tracing = tracemalloc.is_tracing()
    if not already_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already_tracing:
            tracemalloc.stop()
    return (peak - before) / MB


def measure(case: Case[Any], *, runs: int, warmup: int) -> Figures:
    state = case.setup()

    def reset() -> None:
        if case.reset is not None:
            case.reset(state)
            gc.collect()  # the reset's garbage, not the next timed call's

    def run() -> object:
        return case.run(state)

    floor: Callable[[], object] | None = None
    if case.floor is not None:
        floor_fn = case.floor

        def floor() -> object:
            return floor_fn(state)

    for _ in range(warmup):
        reset()
        run()
        if floor is not None:
            reset()
            floor()
    gc.collect()
    # Interleaved, so that drift (other processes, CPU clocks) hits the case and its floor alike.
    times: list[float] = []
    floor_times: list[float] = []
    backend_ns: list[int] = []  # the database's own CPU in each run, where it can be read
    for _ in range(runs):
        reset()
        backend = database_backend_pid()
        before_ns = task_cpu_ns(backend) if backend is not None else None
        times.append(elapsed(run))
        after_ns = task_cpu_ns(backend) if backend is not None else None
        if before_ns is not None and after_ns is not None and database_backend_pid() == backend:
            backend_ns.append(after_ns - before_ns)
        if floor is not None:
            reset()
            floor_times.append(elapsed(floor))
    reset()
    queries = count_queries(run)
    reset()
    peak_mb = peak_memory_mb(run)
    if case.check is not None:
        case.check(state)
    reset()

    median = statistics.median(times)
    result: Figures = {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "queries": queries,
        "peak_mb": round(peak_mb, 4),
        "runs": runs,
        "warmup": warmup,
    }
    if backend_ns:
        # Mean CPU of the PostgreSQL process serving the run's own connection, over the runs it served throughout
        # (queries the case sends on other connections, such as an HTTP server's, are not in it).
        result["db_cpu_ms"] = round(sum(backend_ns) / len(backend_ns) / 1e6, 3)
    if floor_times:
        floor_median = statistics.median(floor_times)
        result["floor_median_s"] = floor_median
        result["ratio_to_floor"] = round(median / floor_median, 3)
    return result


# --- Reporting ------------------------------------------------------------------------


def environment(*, vendor: str, runs: int, warmup: int) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "database_vendor": vendor,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "warmup": warmup,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(path: Path, results: Mapping[str, Result], env: Mapping[str, Any]) -> None:
    """Merge ``results`` into the file at ``path`` (other cases' entries stay), replacing its env."""
    cases: dict[str, Any] = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text())
            cases = dict(previous.get("cases", {}))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            print(f"warning: ignoring unreadable {path}: {exc}", file=sys.stderr)
    cases.update(results)
    payload = {"cases": dict(sorted(cases.items())), "env": dict(env)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    partial.replace(path)


def format_table(results: Mapping[str, Result]) -> str:
    def ms(value: float | int | str | None) -> str:
        return "-" if not isinstance(value, int | float) else f"{value * 1000:.3f}"

    header = ("case", "median ms", "min ms", "max ms", "queries", "peak MB", "floor ms", "x floor", "checks")
    rows = [header]
    for name, r in results.items():
        ratio = r.get("ratio_to_floor")
        rows.append(
            (
                name,
                ms(r["median_s"]),
                ms(r["min_s"]),
                ms(r["max_s"]),
                str(r["queries"]),
                f"{r['peak_mb']:.3f}",
                ms(r.get("floor_median_s")),
                "-" if ratio is None else f"{ratio:.2f}",
                str(r.get("checks", "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        numbers = (cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True))
        return "  ".join([first.ljust(widths[0]), *numbers])

    return "\n".join([line(header), line(["-" * width for width in widths]), *(line(row) for row in rows[1:])])


# --- Command line ---------------------------------------------------------------------


def positive_int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def runs_and_warmup(case: Case[Any], *, runs: int | None, warmup: int | None) -> tuple[int, int]:
    """The command line's --runs and --warmup where given, else the case's own."""
    return (case.runs if runs is None else runs, case.warmup if warmup is None else warmup)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run performance cases.")
    parser.add_argument("cases", nargs="*", metavar="CASE", help="case names (default: all)")
    parser.add_argument(
        "--runs", type=positive_int(1), help=f"timed runs per case (default: the case's own, else {DEFAULT_RUNS})"
    )
    parser.add_argument(
        "--warmup", type=positive_int(0), help=f"untimed runs first (default: the case's own, else {DEFAULT_WARMUP})"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON results file (default: benchmarks/results.json at full size; none at tiny size)",
    )
    parser.add_argument(
        "--size",
        choices=SIZES,
        default=os.environ.get(SIZE_ENV) or "full",
        help=f"full (the figures of results.json) or tiny (every case on small data, to prove it runs); "
        f"default: ${SIZE_ENV}, else full",
    )
    return parser.parse_args(argv)


def output_path(args: argparse.Namespace) -> Path | None:
    """Where the results go: --output, else results.json at full size; a tiny run never writes results.json."""
    if args.size == "full":
        return args.output or DEFAULT_OUTPUT
    if args.output is not None and args.output.resolve() == DEFAULT_OUTPUT.resolve():
        raise SystemExit(f"--size {args.size} would overwrite the full-size figures in {DEFAULT_OUTPUT}")
    return args.output


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    output = output_path(args)
    choose_size(args.size)
    with dedicated_database() as url:
        django.setup()
        from benchmarks.cases import CASES  # after DATABASE_URL is set and apps are loaded: cases import models

        unknown = [name for name in args.cases if name not in CASES]
        if unknown:
            print(f"unknown case(s): {', '.join(unknown)}", file=sys.stderr)
            print(f"known cases: {', '.join(CASES)}", file=sys.stderr)
            return 2
        names = list(dict.fromkeys(args.cases)) or list(CASES)
        started = time.perf_counter()
        vendor = prepare_django(url)
        print(f"database ready ({vendor}, migrated, demo data): {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results: dict[str, Result] = {}
        skipped: dict[str, str] = {}
        for name in names:
            case = CASES[name]
            if case.needs is not None and case.needs != vendor:
                skipped[name] = f"needs {VENDOR_NAMES.get(case.needs, case.needs)}"
                print(
                    f"{name}: skipped: {skipped[name]}, and this database is {VENDOR_NAMES.get(vendor, vendor)} "
                    f"(set BENCH_DATABASE_URL=postgres://...). Its entry in the results file is left as it was.",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            runs, warmup = runs_and_warmup(case, runs=args.runs, warmup=args.warmup)
            print(f"{name}: {warmup} warm-up, {runs} timed runs ({args.size}) ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            with checks_counted() as checks:
                result: Result = {**measure(case, runs=runs, warmup=warmup), "database_vendor": vendor}
                figures = case.extras(result) if case.extras else {}
                count = checks()
            if count < 1:
                raise RuntimeError(f"{name}: no check ran (a case's checks call benchmarks.harness.checked())")
            results[name] = {**result, **figures, "checks": count}
            print(f"{name}: {count} checks passed; {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    env = environment(
        vendor=vendor,
        runs=DEFAULT_RUNS if args.runs is None else args.runs,
        warmup=DEFAULT_WARMUP if args.warmup is None else args.warmup,
    )
    env |= {"size": args.size, "skipped": skipped}
    if output is not None:
        write_results(output, results, env)
    print(format_table(results))
    for name, reason in skipped.items():
        print(f"{name}: skipped ({reason})")
    written = f"results written to {output}" if output is not None else "results not written (no --output)"
    print(f"\ndatabase: {vendor}; size: {args.size}; {written}")
    return 0
