"""CI itself: the workflow lints clean, CI entry points share one script, the gate judges.

The gate is run as the real ``actionrec gate`` command on real ``metrics.json`` files;
the degraded-run test (a real pipeline run that learns nothing) is in
``test_training_pipeline.py``, beside the tiny run it compares with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from actionrec.config import ARCHITECTURES, load_params
from tests.conftest import REPO, run_cmd

BIN = Path(sys.executable).parent
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: `pip install -e .[dev]` (make setup)")
    return str(path)


def test_the_workflow_passes_actionlint():
    proc = subprocess.run([_tool("actionlint"), "-color=false", str(WORKFLOW)], cwd=REPO,
                          capture_output=True, text=True, env={"PATH": f"{BIN}:/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check above can fail: an unknown key and a bad expression are reported."""
    broken = yaml.safe_load(WORKFLOW.read_text())
    broken["jobs"]["test"]["runs-on"] = "${{ matrix.missing }}"
    broken["jobs"]["test"]["timeout-minute"] = 5
    wf = tmp_path / ".github" / "workflows" / "ci.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(yaml.safe_dump(broken))
    proc = subprocess.run([_tool("actionlint"), "-color=false", str(wf)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "timeout-minute" in proc.stdout and "matrix" in proc.stdout


def test_ci_shell_scripts_pass_shellcheck():
    scripts = [REPO / "ci" / "tiny_pipeline.sh", REPO / ".ci" / "run",
               REPO / "scripts" / "bootstrap.sh"]
    proc = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout


def test_the_workflow_and_ci_run_call_the_same_commands():
    """Both run the README's test command and then `make ci-pipeline` (one script)."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["test"]["steps"]
    runs = [s["run"].strip() for s in steps if "run" in s]
    assert runs.index("make test") < runs.index("make ci-pipeline")
    ci_run = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ci_run.index("make test") < ci_run.index("make ci-pipeline")
    makefile = (REPO / "Makefile").read_text()
    assert "\tbash ci/tiny_pipeline.sh\n" in makefile
    assert "\tbash ci/tiny_pipeline.sh --update-baseline\n" in makefile
    assert "make test" in (REPO / "README.md").read_text()
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"


def test_the_committed_baseline_guards_every_architecture():
    """Every architecture has its gated metrics in the baseline, far enough above chance
    (0.25 on the tiny profile's 4 classes) that a broken one falls beyond the tolerance:
    at least 0.85, test top-1 and macro-F1 included, for all five."""
    gate = load_params(REPO / "params.yaml").gate
    for arch in ARCHITECTURES:
        metrics = json.loads((REPO / gate.baseline / arch / "metrics.json").read_text())
        gated = gate.metrics_for(arch)
        assert {"top1_accuracy", "macro_f1"} <= set(gated), arch
        assert all(isinstance(metrics[m], float) for m in gated), arch
        assert all(metrics[m] >= 0.85 for m in gated), (arch, {m: metrics[m] for m in gated})
        assert all(metrics[m] - gate.tolerance > 0.25 + 0.5 for m in gated), arch


def test_tiny_pipeline_script_refuses_an_unknown_argument():
    proc = subprocess.run(["bash", str(REPO / "ci" / "tiny_pipeline.sh"), "--bogus"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown argument '--bogus'" in proc.stderr
    helped = subprocess.run(["bash", str(REPO / "ci" / "tiny_pipeline.sh"), "--help"],
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "--update-baseline" in helped.stdout


# --- the gate on real metrics files ------------------------------------------------------

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
    assert "| lrcn | top1_accuracy | 0.900 | 0.850 | -0.050 | ok |" in proc.stdout
    assert "| lrcn | macro_f1 | 0.880 | 0.950 | +0.070 | improved |" in proc.stdout


def test_gate_fails_a_drop_beyond_tolerance_with_a_table(tmp_path):
    current = {"lrcn": {"top1_accuracy": 0.84, "macro_f1": 0.88},
               "convlstm": BASE["convlstm"]}
    proc = _gate(tmp_path, current)
    assert proc.returncode == 1
    assert "Regression gate: FAILED" in proc.stdout
    assert "| lrcn | top1_accuracy | 0.900 | 0.840 | -0.060 | **regressed** |" in proc.stdout
    assert "lrcn (regressed)" in proc.stderr and "make baseline" in proc.stderr


def test_gate_fails_a_missing_architecture_and_a_missing_metric(tmp_path):
    current = {"lrcn": {"top1_accuracy": 0.9, "macro_f1": float("nan")}}
    proc = _gate(tmp_path, current)
    assert proc.returncode == 1
    assert "| convlstm | top1_accuracy | 0.800 | — | — | **missing architecture** |" in proc.stdout
    assert "| lrcn | macro_f1 | 0.880 | — | — | **missing metric** |" in proc.stdout


def test_gate_lists_a_new_architecture_without_failing(tmp_path):
    current = {**BASE, "lrcn_v2": {"top1_accuracy": 0.5, "macro_f1": 0.5}}
    proc = _gate(tmp_path, current, "--summary", str(tmp_path / "summary.md"))
    assert proc.returncode == 0
    assert "| lrcn_v2 | top1_accuracy | — | 0.500 | — | new |" in proc.stdout
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
    assert "| convlstm | train_top1_accuracy | 1.000 | 0.500 | -0.500 | **regressed** |" \
        in proc.stdout
    assert "| convlstm | top1_accuracy |" not in proc.stdout  # not gated for convlstm
    assert "| lrcn | top1_accuracy | 0.900 | 0.900 | +0.000 | ok |" in proc.stdout
    assert "convlstm (regressed)" in proc.stderr and "lrcn (" not in proc.stderr


def test_gate_without_reports_says_what_to_do(tmp_path):
    proc = _run_gate(tmp_path, "--reports", str(tmp_path / "nothing"), "--update")
    assert proc.returncode == 1 and "run the pipeline first" in proc.stderr
