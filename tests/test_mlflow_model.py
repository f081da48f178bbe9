"""The tiny run's models as MLflow serves them: the registered pyfunc (mlflow_model.py)
loaded from the registry predicts a real UCF101 clip, and `mlflow models serve` answers a
posted clip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import background_server, champion, free_port

pytestmark = pytest.mark.slow


def test_registered_model_predicts_on_a_real_clip(tiny_run, sample_dir):
    import mlflow.pyfunc

    from actionrec.data.video import load_clip

    repo = tiny_run
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    meta = json.loads((repo / "models" / "lrcn" / "meta.json").read_text())
    clip, _ = load_clip(sample_dir / "UCF-101" / "Punch" / "v_Punch_g03_c01.avi",
                        meta["sequence_length"], meta["image_size"], meta["sampling"],
                        meta["short_clip"], meta["crop"])
    for arch in ("lrcn", "vgg16_bilstm"):
        model = mlflow.pyfunc.load_model(f"models:/actionrec-{arch}/1")
        size = json.loads((repo / "models" / arch / "meta.json").read_text())["image_size"]
        x = clip if size == meta["image_size"] else load_clip(
            sample_dir / "UCF-101" / "Punch" / "v_Punch_g03_c01.avi", meta["sequence_length"],
            size)[0]
        probs = model.predict(x[None])
        assert list(probs.columns) == meta["classes"]
        assert probs.shape == (1, 4) and abs(float(probs.iloc[0].sum()) - 1) < 1e-4


def test_mlflow_models_serve_answers_a_posted_clip(tiny_run, sample_dir, tmp_path):
    """The real scoring server on 127.0.0.1: POST frames, get the class probabilities."""
    import requests

    from actionrec.data.video import load_clip
    from actionrec.predict import load_predictor

    repo = tiny_run
    best = champion(repo)
    predictor = load_predictor(str(repo / "models" / best))
    c = predictor.contract
    clip, _ = load_clip(sample_dir / "UCF-101" / "Punch" / "v_Punch_g03_c01.avi",
                        c.sequence_length, c.image_size, c.sampling, c.short_clip, c.crop)
    expected = predictor.predict_batch(clip[None])[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background_server(
            ["mlflow", "models", "serve", "-m", f"models:/actionrec-{best}@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], cwd=repo,
            ready_url=f"{url}/ping", log_path=tmp_path / "serve.log",
            env={"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}):
        reply = requests.post(f"{url}/invocations", json={"inputs": clip[None].tolist()},
                              timeout=120)
        assert reply.status_code == 200, reply.text
        (answer,) = reply.json()["predictions"]
        assert list(answer) == list(c.classes)
        assert np.allclose([answer[k] for k in c.classes], expected, atol=1e-5)
        bad = requests.post(f"{url}/invocations", json={"inputs": [[1, 2, 3]]}, timeout=60)
        assert bad.status_code == 400, bad.text  # wrong shape: refused by the signature
