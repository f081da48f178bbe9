"""The local MLflow store under stages that start together."""

from __future__ import annotations

import subprocess
import sys
import time

#: One stage's first contact with the store: wait for the starting signal, then
#: ``tracking.store.setup`` (which creates the SQLite tables and the experiment if need be).
_FIRST_CONTACT = """
import sys, time
from pathlib import Path
from actionrec.tracking import store
import mlflow  # imported before the signal, so that the processes reach the store together
root, go = Path(sys.argv[1]), Path(sys.argv[2])
(root / f"ready-{sys.argv[3]}").touch()
while not go.exists():
    time.sleep(0.005)
print(store.setup(f"sqlite:///{root / 'mlflow.db'}", "actionrec-tiny", root))
"""


def test_stages_starting_together_on_a_new_store_share_one_experiment(tmp_path):
    """Three processes reach a store that does not exist yet at the same moment (as two
    architectures do under `ci/tiny_pipeline.sh`, or `dvc queue start -j 3`): all succeed
    and get the same experiment, the only one besides MLflow's Default."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _FIRST_CONTACT, str(tmp_path), str(go),
                               str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(3)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    answers = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, answers, strict=True):
        assert proc.returncode == 0, err[-3000:]
    ids = {out.strip().splitlines()[-1] for out, _ in answers}
    assert len(ids) == 1, ids

    from mlflow import MlflowClient

    names = {e.name for e in MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
             .search_experiments()}
    assert names == {"Default", "actionrec-tiny"}
