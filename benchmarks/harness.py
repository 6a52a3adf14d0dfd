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

S = TypeVar("S")
Figures = dict[str, float | int]  # what measure() finds
Result = dict[str, float | int | str]  # an entry of results.json: the figures, extras and the database

SETTINGS_MODULE = "clinic.settings"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
DEFAULT_RUNS = 15
DEFAULT_WARMUP = 1
MB = 1024 * 1024


@dataclass(frozen=True)
class Case(Generic[S]):
    """One benchmark. ``setup`` runs once, untimed, and returns the state that ``run`` and ``floor`` take.

    ``floor`` is optional: the same work done the simplest possible way, timed beside ``run``.
    ``reset`` is optional: it puts the database back, untimed, before every call of ``run`` and ``floor`` (warm-up,
    timed, query-count and memory runs alike) and once at the end.
    ``runs`` and ``warmup`` are the case's own defaults; --runs and --warmup on the command line override them.
    """

    name: str
    setup: Callable[[], S]
    run: Callable[[S], object]
    floor: Callable[[S], object] | None = None
    reset: Callable[[S], object] | None = None
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    # Figures beyond the one median (e.g. latencies per number of clients), added to the case's entry; None
    # means the case skipped itself (e.g. PostgreSQL only) and the file keeps its earlier entry.
    extras: Callable[[Result], Result | None] | None = None


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
    for _ in range(runs):
        reset()
        times.append(elapsed(run))
        if floor is not None:
            reset()
            floor_times.append(elapsed(floor))
    reset()
    queries = count_queries(run)
    reset()
    peak_mb = peak_memory_mb(run)
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

    header = ("case", "median ms", "min ms", "max ms", "queries", "peak MB", "floor ms", "x floor")
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
        "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file (default: benchmarks/results.json)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with dedicated_database() as url:
        django.setup()
        from benchmarks.cases import CASES  # after DATABASE_URL is set and apps are loaded: cases import models

        unknown = [name for name in args.cases if name not in CASES]
        if unknown:
            print(f"unknown case(s): {', '.join(unknown)}", file=sys.stderr)
            print(f"known cases: {', '.join(CASES)}", file=sys.stderr)
            return 2
        names = list(dict.fromkeys(args.cases)) or list(CASES)
        vendor = prepare_django(url)
        results: dict[str, Result] = {}
        for name in names:
            case = CASES[name]
            runs, warmup = runs_and_warmup(case, runs=args.runs, warmup=args.warmup)
            print(f"{name}: {warmup} warm-up, {runs} timed runs ...", file=sys.stderr, flush=True)
            result: Result = {**measure(case, runs=runs, warmup=warmup), "database_vendor": vendor}
            figures = case.extras(result) if case.extras else {}
            if figures is not None:
                results[name] = {**result, **figures}

    env = environment(
        vendor=vendor,
        runs=DEFAULT_RUNS if args.runs is None else args.runs,
        warmup=DEFAULT_WARMUP if args.warmup is None else args.warmup,
    )
    write_results(args.output, results, env)
    print(format_table(results))
    print(f"\ndatabase: {vendor}; results written to {args.output}")
    return 0
