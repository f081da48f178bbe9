"""The GPU check (benchmarks/gpu_check.py), proved on the CPU: its dry run lists the real
run's sizes within the 8 minutes a GPU lease allows, and its smallest part runs under JAX
and writes the table. (The whole check at small sizes: `make gpu-check`; the wheels it
carries: `make gpu-wheels`.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, command_env

pytestmark = pytest.mark.slow

CHECK = str(REPO / "benchmarks" / "gpu_check.py")


def test_the_dry_run_lists_the_real_sizes_within_eight_minutes():
    out = subprocess.run([sys.executable, CHECK, "--dry-run"], capture_output=True, text=True,
                         check=True, env=command_env()).stdout
    first, *parts = out.strip().splitlines()
    assert first.startswith("gpu_check: 5 parts, KERAS_BACKEND=jax")
    assert int(first.split(",")[-1].split()[0]) <= 480  # seconds: the caps add up to 8 min
    assert any("--only efficientnetb7_lstm --feature-clips efficientnetb7_lstm=40" in p
               for p in parts)
    assert not any("--size" in p or "--length" in p for p in parts)  # the real sizes


def test_the_smallest_part_runs_under_jax_and_writes_the_table(tmp_path):
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    proc = subprocess.run([sys.executable, CHECK, "--small", "--only", "lrcn", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=command_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "gpu_check.md").read_text()
    assert "backend jax" in table and "| train lrcn (augmentation on) | clips/s |" in table
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [p["status"] for p in result["parts"]] == ["ok"] and result["small"] is True
    assert (tmp_path / "lrcn.log").stat().st_size > 0
