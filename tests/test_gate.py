"""The regression gate (`actionrec gate`, gate.py): on metrics files made here, each rule
of the table; on the tiny run, an unchanged run passes and a run broken by its params fails,
naming what broke."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from actionrec.config import ARCHITECTURES
from tests.helpers import REPO, copy_project, run_cmd


def _write(root: Path, metrics: dict[str, dict]) -> Path:
    for arch, m in metrics.items():
        (root / arch).mkdir(parents=True, exist_ok=True)
        (root / arch / "metrics.json").write_text(json.dumps(m))
    return root


BASE = {"lrcn": {"top1_accuracy": 0.9, "macro_f1": 0.88, "latency_ms": 3.0},
        "convlstm": {"top1_accuracy": 0.8, "macro_f1": 0.75, "latency_ms": 5.0}}


def _run_gate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The real ``actionrec gate`` run in ``tmp_path``, with the repository's params but
    ``gate.metrics: [top1_accuracy, macro_f1]`` (what these tests' metrics files hold)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gate"]["metrics"] = ["top1_accuracy", "macro_f1"]
    (tmp_path / "gate_params.yaml").write_text(yaml.safe_dump(params))
    return run_cmd(["actionrec", "gate", "--params", str(tmp_path / "gate_params.yaml"),
                    *args], cwd=tmp_path, check=False)


def _gate(tmp_path: Path, current: dict, *extra: str) -> subprocess.CompletedProcess:
    base = _write(tmp_path / "baseline", BASE)
    cur = _write(tmp_path / "reports", current)
    return _run_gate(tmp_path, "--baseline", str(base), "--reports", str(cur),
                     "--tolerance", "0.05", *extra)


def test_gate_passes_an_unchanged_run(tmp_path):
    proc = _gate(tmp_path, {a: {**m, "latency_ms": 99.0} for a, m in BASE.items()})
    assert proc.returncode == 0, proc.stderr
    assert "Regression gate: passed" in proc.stdout
    assert proc.stdout.count("| ok |") == 4


def test_gate_passes_a_drop_within_tolerance_and_lists_an_improvement(tmp_path):
    current = {"lrcn": {"top1_accuracy": 0.85, "macro_f1": 0.95},
               "convlstm": BASE["convlstm"]}
    proc = _gate(tmp_path, current)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| lrcn | top1_accuracy | 0.900 | 0.850 | — | -0.050 | ok |" in proc.stdout
    assert "| lrcn | macro_f1 | 0.880 | 0.950 | — | +0.070 | improved |" in proc.stdout


def test_gate_shows_the_runs_interval_and_judges_each_architecture_on_its_tolerance(tmp_path):
    """params.yaml's per-architecture tolerance (no --tolerance): the same 0.1 drop fails
    lrcn (default 0.079) and passes inceptionv3_gru (0.125); each check shows this run's
    interval over the test groups where its metrics.json has one."""
    base = _write(tmp_path / "baseline", {a: {"top1_accuracy": 0.9, "macro_f1": 0.9}
                                          for a in ("lrcn", "inceptionv3_gru")})
    cur = _write(tmp_path / "reports", {a: {
        "top1_accuracy": 0.8, "top1_accuracy_ci_low": 0.65, "top1_accuracy_ci_high": 0.9,
        "macro_f1": 0.9} for a in ("lrcn", "inceptionv3_gru")})
    proc = _run_gate(tmp_path, "--baseline", str(base), "--reports", str(cur))
    assert proc.returncode == 1
    assert "tolerance 0.079, inceptionv3_gru 0.125)" in proc.stdout
    assert ("| lrcn | top1_accuracy | 0.900 | 0.800 | [0.650, 0.900] | -0.100 | **regressed** |"
            in proc.stdout)
    assert ("| inceptionv3_gru | top1_accuracy | 0.900 | 0.800 | [0.650, 0.900] | -0.100 | ok |"
            in proc.stdout)
    assert "| lrcn | macro_f1 | 0.900 | 0.900 | — | +0.000 | ok |" in proc.stdout
    assert "lrcn (regressed)" in proc.stderr and "inceptionv3_gru" not in proc.stderr


def test_gate_fails_a_drop_beyond_tolerance_with_a_table(tmp_path):
    current = {"lrcn": {"top1_accuracy": 0.84, "macro_f1": 0.88},
               "convlstm": BASE["convlstm"]}
    proc = _gate(tmp_path, current)
    assert proc.returncode == 1
    assert "Regression gate: FAILED" in proc.stdout
    assert "| lrcn | top1_accuracy | 0.900 | 0.840 | — | -0.060 | **regressed** |" in proc.stdout
    assert "lrcn (regressed)" in proc.stderr and "make baseline" in proc.stderr


def test_gate_fails_a_missing_architecture_and_a_missing_metric(tmp_path):
    current = {"lrcn": {"top1_accuracy": 0.9, "macro_f1": float("nan")}}
    proc = _gate(tmp_path, current)
    assert proc.returncode == 1
    assert ("| convlstm | top1_accuracy | 0.800 | — | — | — | **missing architecture** |"
            in proc.stdout)
    assert "| lrcn | macro_f1 | 0.880 | — | — | — | **missing metric** |" in proc.stdout


def test_gate_lists_a_new_architecture_without_failing(tmp_path):
    current = {**BASE, "lrcn_v2": {"top1_accuracy": 0.5, "macro_f1": 0.5}}
    proc = _gate(tmp_path, current, "--summary", str(tmp_path / "summary.md"))
    assert proc.returncode == 0
    assert "| lrcn_v2 | top1_accuracy | — | 0.500 | — | — | new |" in proc.stdout
    assert (tmp_path / "summary.md").read_text().strip() == proc.stdout.strip()


def test_gate_update_rewrites_the_baseline_from_the_reports(tmp_path):
    current = {"lrcn": {"top1_accuracy": 0.5, "macro_f1": 0.4}}
    proc = _gate(tmp_path, current, "--update")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "baseline" / "lrcn" / "metrics.json").read_text()) == \
        current["lrcn"]
    assert not (tmp_path / "baseline" / "convlstm").exists()
    again = _run_gate(tmp_path, "--baseline", str(tmp_path / "baseline"),
                      "--reports", str(tmp_path / "reports"))
    assert again.returncode == 0


def test_gate_judges_each_architecture_on_its_own_metrics(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gate"]["metrics"] = {"default": ["top1_accuracy"],
                                 "convlstm": ["train_top1_accuracy"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    base = _write(tmp_path / "baseline", {
        "lrcn": {"top1_accuracy": 0.9},
        "convlstm": {"top1_accuracy": 0.8, "train_top1_accuracy": 1.0}})
    cur = _write(tmp_path / "reports", {
        "lrcn": {"top1_accuracy": 0.9},
        "convlstm": {"top1_accuracy": 0.2, "train_top1_accuracy": 0.5}})
    proc = run_cmd(["actionrec", "gate", "--params", str(tmp_path / "params.yaml"),
                    "--baseline", str(base), "--reports", str(cur)], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "| convlstm | train_top1_accuracy | 1.000 | 0.500 | — | -0.500 | **regressed** |" \
        in proc.stdout
    assert "| convlstm | top1_accuracy |" not in proc.stdout  # not gated for convlstm
    assert "| lrcn | top1_accuracy | 0.900 | 0.900 | — | +0.000 | ok |" in proc.stdout
    assert "convlstm (regressed)" in proc.stderr and "lrcn (" not in proc.stderr


def test_gate_without_reports_says_what_to_do(tmp_path):
    proc = _run_gate(tmp_path, "--reports", str(tmp_path / "nothing"), "--update")
    assert proc.returncode == 1 and "run the pipeline first" in proc.stderr


def _gate_against_baseline(repo: Path, reports: Path) -> subprocess.CompletedProcess:
    """``actionrec gate`` of ``reports`` against the repository's committed baseline."""
    return run_cmd(["actionrec", "gate", "--reports", str(reports),
                    "--params", str(REPO / "params.yaml"),
                    "--baseline", str(REPO / "ci" / "baseline")], cwd=repo, check=False)


def test_an_unchanged_tiny_run_passes_the_regression_gate(tiny_run):
    """This run is the committed baseline's run: the gate passes (else `make baseline`)."""
    repo = tiny_run
    proc = _gate_against_baseline(repo, repo / "reports" / "evaluate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "**regressed**" not in proc.stdout and "| new |" not in proc.stdout
    assert all(f"| {arch} |" in proc.stdout for arch in ARCHITECTURES)


def test_a_run_broken_by_its_params_fails_the_gate_naming_what_broke(tiny_run, tmp_path):
    """On a copy of the tiny run (up to date: exactly the stages named below rerun), one
    real `dvc exp run` in which one architecture learns nothing (learning rate 1e-9; one
    epoch, since nothing is learned anyway): a head on a frozen backbone's cached features.
    Exactly its train@ and evaluate@ rerun (and check_params, compare: its features come
    from the cache); the gate stops the run and names it; the other four, whose stages did
    not rerun, pass. (The gate judges every architecture with the same code: the tests
    above regress LRCN and ConvLSTM in synthetic reports.)"""
    repo = copy_project(tiny_run, tmp_path / "repo")
    broken = ("inceptionv3_gru",)
    args = []
    for arch in broken:
        args += ["-S", f"models.{arch}.learning_rate=1e-9", "-S", f"models.{arch}.epochs=1"]
    proc = run_cmd(["dvc", "exp", "run", *args], cwd=repo, timeout=1500)
    ran = {line.split("'")[1] for line in proc.stdout.splitlines()
           if line.startswith("Running stage")}
    assert ran == {*(f"{s}@{a}" for s in ("train", "evaluate") for a in broken),
                   "check_params", "compare"}  # frames and features came from the cache
    gate = _gate_against_baseline(repo, repo / "reports" / "evaluate")
    assert gate.returncode == 1, gate.stdout
    assert "Regression gate: FAILED" in gate.stdout
    for arch in ARCHITECTURES:
        assert (f"{arch} (regressed)" in gate.stderr) == (arch in broken), (arch, gate.stderr)
