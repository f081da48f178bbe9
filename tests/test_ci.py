"""CI itself: the workflow lints clean, its jobs together run what `.ci/run` runs, the CI
scripts pass shellcheck, the committed baseline guards every architecture. (The gate's own
rules: test_gate.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from actionrec.config import ARCHITECTURES, load_params
from tests.helpers import REPO

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
    broken["jobs"]["unit"]["runs-on"] = "${{ matrix.missing }}"
    broken["jobs"]["unit"]["timeout-minute"] = 5
    wf = tmp_path / ".github" / "workflows" / "ci.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(yaml.safe_dump(broken))
    proc = subprocess.run([_tool("actionlint"), "-color=false", str(wf)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "timeout-minute" in proc.stdout and "matrix" in proc.stdout


def test_ci_shell_scripts_pass_shellcheck():
    scripts = [REPO / "ci" / "tiny_pipeline.sh", REPO / ".ci" / "run",
               REPO / "scripts" / "bootstrap.sh", REPO / "scripts" / "gpu_wheels.sh"]
    proc = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout


def _make_recipe(target: str) -> list[str]:
    """The command lines of a Makefile target's recipe."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().lstrip("@"))
    return recipe


def test_the_workflow_jobs_together_run_what_ci_run_runs():
    """.ci/run: `make test`, then `make ci-pipeline`. The workflow splits the same work over
    three jobs: lint + `-m "not slow"` + the backends pass, the tiny pipeline + gate, and
    `-m slow`; the two pytest selections are complementary, and `make test` runs
    lint, the whole suite in one pytest call and the same backends pass."""
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    runs = {name: [s["run"].strip() for s in job["steps"] if "run" in s]
            for name, job in jobs.items()}
    assert runs == {"unit": ["make setup", "make lint", "make test-unit", "make test-backends"],
                    "pipeline": ["make setup", "make ci-pipeline"],
                    "integration": ["make setup", "make test-slow"]}
    assert 'pytest $(PYTEST_XDIST) -m "not slow"' in _make_recipe("test-unit")
    assert "pytest $(PYTEST_XDIST) -m slow" in _make_recipe("test-slow")
    test = _make_recipe("test")
    lint = ["ruff check .", "lint-imports", "mkdocs build --strict"]
    assert test[1:] == [*lint, "pytest $(PYTEST_XDIST) --durations=25",
                        "$(MAKE) --no-print-directory test-backends"]
    assert _make_recipe("lint") == lint
    assert _make_recipe("ci-pipeline") == ["bash ci/tiny_pipeline.sh"]
    assert "\tbash ci/tiny_pipeline.sh --update-baseline\n" in (REPO / "Makefile").read_text()
    ci_run = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ci_run.index("make test") < ci_run.index("make ci-pipeline")
    assert "make test" in (REPO / "README.md").read_text()
    uploads = [s for s in jobs["pipeline"]["steps"]
               if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"


def test_the_committed_baseline_guards_every_architecture():
    """Every architecture has its gated metrics in the baseline, far enough above chance
    (0.25 on the tiny profile's 4 classes) that a broken one falls beyond its tolerance:
    at least 0.75, and above twice chance by more than the tolerance, test top-1 and
    macro-F1 included, for all five. (InceptionV3's tiny head: 0.77 with 0.125 allowed.)"""
    gate = load_params(REPO / "params.yaml").gate
    for arch in ARCHITECTURES:
        metrics = json.loads((REPO / gate.baseline / arch / "metrics.json").read_text())
        gated = gate.metrics_for(arch)
        assert {"top1_accuracy", "macro_f1"} <= set(gated), arch
        assert all(isinstance(metrics[m], float) for m in gated), arch
        assert all(metrics[m] >= 0.75 for m in gated), (arch, {m: metrics[m] for m in gated})
        assert all(metrics[m] - gate.tolerance_for(arch) > 2 * 0.25 for m in gated), arch


def test_tiny_pipeline_script_refuses_an_unknown_argument():
    proc = subprocess.run(["bash", str(REPO / "ci" / "tiny_pipeline.sh"), "--bogus"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown argument '--bogus'" in proc.stderr
    helped = subprocess.run(["bash", str(REPO / "ci" / "tiny_pipeline.sh"), "--help"],
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "--update-baseline" in helped.stdout
