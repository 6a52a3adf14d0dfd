"""The benchmark harness end to end, in a subprocess: it builds and migrates a database of its own, so no django_db.

The reset and the runs/warm-up defaults are checked in process, with a fake case that touches no database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import harness
from benchmarks.harness import Case
from tests.conftest import subprocess_env

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
)


def run_benchmarks(*args: str) -> subprocess.CompletedProcess[str]:
    # The harness chooses its own database; drop ours so nothing can point it at a real one.
    env = subprocess_env(drop=("DATABASE_URL", "BENCH_DATABASE_URL"))
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_home_page_results_have_the_documented_shape(tmp_path: Path) -> None:
    output = tmp_path / "r.json"
    done = run_benchmarks("home_page", "--runs", "2", "--warmup", "1", "--output", str(output))
    assert done.returncode == 0, done.stderr

    data = json.loads(output.read_text())
    assert set(data) == {"cases", "env"}
    entry = data["cases"]["home_page"]
    assert set(entry) == {*NUMERIC_KEYS, "database_vendor"}
    assert entry["database_vendor"] == data["env"]["database_vendor"]  # each entry says where it was measured
    for key in NUMERIC_KEYS:
        assert isinstance(entry[key], int | float) and not isinstance(entry[key], bool), key
    assert entry["min_s"] <= entry["median_s"] <= entry["max_s"]
    assert entry["queries"] > 0
    assert entry["peak_mb"] >= 0
    assert entry["floor_median_s"] > 0
    assert entry["ratio_to_floor"] > 0
    assert (entry["runs"], entry["warmup"]) == (2, 1)
    assert data["env"]["runs"] == 2
    assert data["env"]["warmup"] == 1
    assert data["env"]["database_vendor"] == "sqlite"
    assert "home_page" in done.stdout


def test_results_are_merged_into_an_existing_file(tmp_path: Path) -> None:
    output = tmp_path / "r.json"
    output.write_text(json.dumps({"cases": {"other_case": {"median_s": 1.0}}, "env": {"old": True}}))
    done = run_benchmarks("home_page", "--runs", "1", "--warmup", "0", "--output", str(output))
    assert done.returncode == 0, done.stderr

    data = json.loads(output.read_text())
    assert data["cases"]["other_case"] == {"median_s": 1.0}
    assert "home_page" in data["cases"]
    assert "old" not in data["env"]


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
