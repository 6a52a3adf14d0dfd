"""The benchmark harness end to end, in a subprocess: it builds and migrates a database of its own, so no django_db."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env

PROJECT_DIR = Path(__file__).resolve().parents[1]
NUMERIC_KEYS = ("median_s", "min_s", "max_s", "queries", "peak_mb", "floor_median_s", "ratio_to_floor")


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
    assert set(entry) == set(NUMERIC_KEYS)
    for key in NUMERIC_KEYS:
        assert isinstance(entry[key], int | float) and not isinstance(entry[key], bool), key
    assert entry["min_s"] <= entry["median_s"] <= entry["max_s"]
    assert entry["queries"] > 0
    assert entry["peak_mb"] >= 0
    assert entry["floor_median_s"] > 0
    assert entry["ratio_to_floor"] > 0
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
