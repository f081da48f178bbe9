"""The check_params stage: a bad value is refused first, and no output is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actionrec.config import load_params
from actionrec.errors import ConfigError
from tests.helpers import REPO, copy_project, run_cmd

#: The values that, before check_params, were refused only after DVC had removed the
#: stage's outputs; each with the key the message must name in full.
BAD = {
    "models.lrcn.epochs=-1": "models.lrcn.epochs",
    "models.lrcn.learning_rate=0": "models.lrcn.learning_rate",
    "frames.sequence_length=0": "frames.sequence_length",
    "models.lrcn.image_size=abc": "models.lrcn.image_size",
    "data.top_n=500": "data.top_n",
}
#: Outputs of every kind of stage that a bad value must leave in place.
OUTPUTS = ["data/raw/ucfTrainTestlist/classInd.txt", "data/manifest.csv", "data/probe.csv",
           "data/frames/32/index.csv", "data/features/lrcn/meta.json", "models/lrcn/model.keras",
           "reports/evaluate/lrcn/metrics.json", "reports/extract_frames.json",
           "reports/validation.md", "reports/comparison.md"]


def test_top_n_above_the_sources_classes_is_refused_with_its_full_key(repo_params):
    from actionrec.config import parse_params

    raw = {**repo_params, "data": {**repo_params["data"], "top_n": 500}}
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert "  data.top_n: 500 is more than the 101 classes of source ucf101" in str(err.value)
    assert "git checkout params.yaml" in str(err.value)


def test_check_params_validates_without_tensorflow(tmp_path):
    """The first stage answers in seconds: pydantic and PyYAML, no Keras or TensorFlow."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "stages" / "check_params.py"),
         "--params", str(REPO / "params.yaml"), "--out", str(tmp_path / "params.ok")],
        capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "pydantic" in imported and not imported & {"tensorflow", "keras", "jax", "mlflow"}
    assert (tmp_path / "params.ok").read_text().startswith("params.yaml: every setting")
    load_params(REPO / "params.yaml")


@pytest.mark.slow
def test_a_bad_value_is_refused_before_any_output_is_removed(tiny_run, tmp_path):
    """The five bad values in one `dvc exp run` (the stage reports every bad key at once):
    each is named in full, only check_params ran, and every kind of output is as it was."""
    project = copy_project(tiny_run, tmp_path / "project")
    before = {p: (project / p).read_bytes() for p in OUTPUTS}
    params = (project / "params.yaml").read_text()
    overrides = [arg for override in BAD for arg in ("-S", override)]
    proc = run_cmd(["dvc", "exp", "run", *overrides], cwd=project, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{len(BAD)} invalid setting(s)" in out, out[-2000:]
    for key in BAD.values():
        assert f"  {key}: " in out, (key, out[-2000:])
    assert "git checkout params.yaml" in out and "Traceback" not in out
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'check_params':"], ran
    for path, content in before.items():
        assert (project / path).read_bytes() == content, path
    (project / "params.yaml").write_text(params)  # what `git checkout` does in a clone
    # and the run is still whole: with the params back, nothing needs to run
    status = run_cmd(["dvc", "status"], cwd=project)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    assert Path(project / "data" / "params.ok").is_file()
