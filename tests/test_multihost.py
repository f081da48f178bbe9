"""Joining a multi-host job (multihost.py): what is refused, and how, before anything
trains. (Two processes training together, a lost process and the resumed job:
tests/test_parallel.py.)"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from actionrec import multihost
from actionrec.errors import ConfigError
from tests.helpers import command_env, free_port


def test_multihost_needs_the_jax_backend():
    with pytest.raises(ConfigError, match="set KERAS_BACKEND=jax for every process"):
        multihost.initialize(5)  # the test process runs TensorFlow
    assert multihost.current() == multihost.SINGLE


#: Run in a JAX process: each case sets the job's variables and tries to join (none joins,
#: so the next case may try again).
CASES = """
import os, sys, time
from actionrec import multihost
from actionrec.errors import ActionrecError
for case in sys.argv[1:]:
    for name in multihost.JOB_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(dict(kv.split("=", 1) for kv in case.split()))
    start = time.monotonic()
    try:
        multihost.initialize(5, "train@lrcn")
        print("joined")
    except ActionrecError as err:
        print(f"{type(err).__name__} after {time.monotonic() - start:.0f} s: {err}")
"""


def test_a_job_that_cannot_form_is_refused_with_what_to_do():
    """A process id that is not a number; no job described at all (no variables, no Slurm
    or MPI); a process whose coordinator never answers: each is an error naming the fix,
    the last within the 5 s given (train.peer_timeout_s), not JAX's abort."""
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    port = free_port()
    cases = ["KERAS_DISTRIBUTION_PROCESS_ID=x", "",
             f"KERAS_DISTRIBUTION_JOB_ADDRESSES=127.0.0.1:{port} "
             "KERAS_DISTRIBUTION_NUM_PROCESSES=2 KERAS_DISTRIBUTION_PROCESS_ID=1"]
    env = command_env({"KERAS_BACKEND": "jax"})
    for name in multihost.JOB_VARIABLES + ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", CASES, *cases], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    bad_id, undescribed, absent = proc.stdout.strip().splitlines()
    assert "ConfigError" in bad_id and "KERAS_DISTRIBUTION_PROCESS_ID='x' is not a whole" in bad_id
    assert "ConfigError" in undescribed and "the job is not described" in undescribed
    assert "Set KERAS_DISTRIBUTION_JOB_ADDRESSES" in undescribed and "srun" in undescribed
    waited = int(re.match(r"JobError after (\d+) s", absent).group(1))
    assert 5 <= waited < 30, absent  # bounded by the timeout, not JAX's default 300 s
    assert f"coordinator 127.0.0.1:{port} did not answer within 5 s" in absent
    assert "KERAS_DISTRIBUTION_PROCESS_ID=0" in absent
    assert (f"train@lrcn: joining the multi-host job as process 1 of 2 (coordinator "
            f"127.0.0.1:{port}); waiting up to 5 s") in proc.stderr
