"""`actionrec predict`: real videos in four containers, windows, bad input, JSON, plots.

A small LRCN with random weights stands in for a trained model: what is tested is
that predict feeds it exactly what training would (the pipeline's own decoding,
sampling and crop), not what it learned. The last test predicts with the tiny run's
registry champion; the registered pyfunc and `mlflow models serve` are
test_mlflow_model.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from actionrec.data.video import load_clip
from actionrec.io import write_json
from actionrec.models import get_architecture
from actionrec.models import settings as S
from actionrec.predict import (
    InputContract,
    PredictError,
    load_predictor,
    plan_windows,
    predict_video,
)
from tests.helpers import champion, run_cmd

T, SIZE = 8, 32
CLASSES = ["JumpingJack", "Walk", "Wave"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """``models/lrcn``-like folder: model.keras (random weights) + meta.json."""
    keras.utils.set_random_seed(7)
    out = tmp_path_factory.mktemp("model") / "lrcn"
    out.mkdir()
    model = get_architecture("lrcn").build(S.LRCNSettings(image_size=SIZE), len(CLASSES), T)
    model.save(out / "model.keras")
    write_json(out / "meta.json", {
        "architecture": "lrcn", "classes": CLASSES, "num_classes": len(CLASSES),
        "sequence_length": T, "image_size": SIZE, "sampling": "uniform",
        "short_clip": "pad", "crop": "center", "epochs_trained": 1})
    return out


@pytest.fixture(scope="module")
def model(model_dir):
    import actionrec.models.layers  # noqa: F401

    return keras.models.load_model(model_dir / "model.keras", safe_mode=True)


def _frames(n: int, width: int = 96, height: int = 72, seed: int = 0) -> list[np.ndarray]:
    """A moving bright square on noise: every frame differs, so sampling errors show."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        x = (i * 5) % (width - 20)
        f[20:40, x:x + 20] = (40 + 7 * i % 200, 200, 255 - 3 * i % 200)
        out.append(f)
    return out


def write_video(path: Path, frames: list[np.ndarray], fourcc: str, fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), (path, fourcc)
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _expected(model, path: Path) -> np.ndarray:
    """The model on the clip as the pipeline decodes it for training (load_clip)."""
    clip, _ = load_clip(path, T, SIZE, "uniform", "pad", "center")
    return model.predict(clip[None], verbose=0)[0]


@pytest.mark.parametrize("ext,fourcc", [(".avi", "XVID"), (".mp4", "mp4v"), (".mkv", "XVID"),
                                        (".webm", "VP80")])
@pytest.mark.backends
def test_whole_clip_is_sampled_as_in_training(ext, fourcc, model_dir, model, tmp_path):
    video = write_video(tmp_path / f"clip{ext}", _frames(45), fourcc)
    result = predict_video(load_predictor(str(model_dir)), video, top_k=3)
    assert result.ok, result.error
    assert result.n_frames == 45 and result.fps == pytest.approx(25.0, abs=0.1)
    assert result.padded is None and result.to_json()["padded"] is None
    expected = _expected(model, video)
    got = dict(result.top_k)
    assert set(got) == set(CLASSES)
    assert [a for a, _ in result.top_k] == [CLASSES[i] for i in np.argsort(-expected)]
    assert np.allclose([got[c] for c in CLASSES], expected, atol=1e-5)


def test_real_ucf101_clips_avi_and_mp4(sample_dir, model_dir, model):
    predictor = load_predictor(str(model_dir / "model.keras"))
    for rel in ("Punch/v_Punch_g03_c01.avi", "Basketball/v_Basketball_g01_c01.mp4"):
        path = sample_dir / "UCF-101" / rel
        if not path.exists():
            path = next((sample_dir / "UCF-101" / rel.split("/")[0]).iterdir())
        result = predict_video(predictor, path, top_k=1)
        assert result.ok, result.error
        expected = _expected(model, path)
        assert result.top_k[0] == (CLASSES[int(np.argmax(expected))],
                                   pytest.approx(float(expected.max()), abs=1e-5))


@pytest.mark.backends
def test_a_clip_shorter_than_the_sequence_is_zero_padded(model_dir, model, tmp_path):
    video = write_video(tmp_path / "short.avi", _frames(3), "XVID")
    result = predict_video(load_predictor(str(model_dir)), video)
    assert result.ok and result.n_frames == 3
    clip, n_valid = load_clip(video, T, SIZE)
    assert n_valid == 3 and not clip[3:].any()
    expected = model.predict(clip[None], verbose=0)[0]
    assert np.allclose([dict(result.top_k)[c] for c in CLASSES], expected, atol=1e-5)
    # flagged: the answer rests on 3 frames where the model was trained on T
    assert result.padded == {"frames": 3, "sequence_length": T, "filled_by": "zero padding"}
    assert result.to_json()["padded"] == result.padded
    table = run_cmd(["actionrec", "predict", str(video), "--model", str(model_dir)],
                    cwd=tmp_path).stdout
    assert f"short.avi [short: 3 of {T} frames, zero padding]" in table


def test_plan_windows_covers_the_whole_clip():
    c = InputContract(tuple(CLASSES), 4, SIZE, "uniform", "pad", "center")
    spans = [(w.start, w.stop) for w in plan_windows(100, c, window=25, stride=12)]
    assert spans[:3] == [(0, 25), (12, 37), (24, 49)]
    assert spans[-1] == (75, 100) and spans[-2] == (72, 97)
    assert [(w.start, w.stop) for w in plan_windows(20, c, window=25, stride=12)] == [(0, 20)]
    whole = plan_windows(100, c)
    assert len(whole) == 1 and whole[0].indices.tolist() == [12, 37, 62, 87]
    assert all(w.indices.min() >= w.start and w.last < w.stop
               for w in plan_windows(100, c, window=25, stride=12))


def test_views_answer_the_mean_of_the_views_as_evaluate_does(model_dir, model, tmp_path):
    """``--views 3``: the clip's (and each window's) probabilities are the mean of the
    model's on the three views that evaluate.views takes (view_indices); the views see
    other frames, so their answers differ."""
    from actionrec.data.video import crop_resize, read_frames, view_indices

    video = write_video(tmp_path / "views.avi", _frames(60, seed=3), "MJPG")
    result = predict_video(load_predictor(str(model_dir)), video, views=3)
    assert result.ok, result.error
    each = []
    for k in range(3):
        idx, _ = view_indices(60, T, "uniform", "pad", k, 3)
        clip = np.stack([crop_resize(f, SIZE) for f in read_frames(video, idx)])
        each.append(model.predict(clip[None], verbose=0)[0])
    assert np.abs(each[0] - each[1]).max() > 1e-4  # the views disagree
    mean = np.mean(each, axis=0)
    assert np.allclose([dict(result.top_k)[c] for c in CLASSES], mean, atol=1e-5)
    one = predict_video(load_predictor(str(model_dir)), video)  # views=1: view 0 alone
    assert np.allclose([dict(one.top_k)[c] for c in CLASSES], each[0], atol=1e-5)
    windows = plan_windows(60, InputContract(tuple(CLASSES), T, SIZE, "uniform", "pad",
                                             "center"), window=30, stride=30, views=3)
    assert [(w.start, w.view) for w in windows] == [(0, 0), (0, 1), (0, 2), (30, 0), (30, 1),
                                                    (30, 2)]


@pytest.mark.backends
def test_each_window_is_predicted_as_if_it_were_its_own_clip(model_dir, model, tmp_path):
    """MJPG is intra-frame: the frames of a window cut into its own file decode to the
    same pixels, so the window's answer must equal the whole-clip answer on that file."""
    frames = _frames(100, seed=1)
    video = write_video(tmp_path / "long.avi", frames, "MJPG")
    result = predict_video(load_predictor(str(model_dir)), video, window_s=1.0, stride_s=0.5)
    assert result.ok, result.error
    segs = result.timeline
    assert [(round(g.start_s * 25), round(g.end_s * 25)) for g in segs][:2] == [(0, 25), (12, 37)]
    assert segs[-1].end_s == pytest.approx(4.0)
    for g in (segs[0], segs[3], segs[-1]):
        start, stop = round(g.start_s * 25), round(g.end_s * 25)
        cut = write_video(tmp_path / f"cut{start}.avi", frames[start:stop], "MJPG")
        expected = _expected(model, cut)
        assert np.allclose(g.probabilities, expected, atol=1e-5), (start, stop)
        assert g.action == CLASSES[int(np.argmax(expected))]
    mean = np.mean([g.probabilities for g in segs], axis=0)
    assert result.top_k[0] == (CLASSES[int(np.argmax(mean))], pytest.approx(float(mean.max())))


def test_1080p_video(model_dir, tmp_path):
    frames = [cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_NEAREST) for f in _frames(30)]
    video = write_video(tmp_path / "hd.mp4", frames, "mp4v")
    result = predict_video(load_predictor(str(model_dir)), video, window_s=0.4, stride_s=0.4)
    assert result.ok and len(result.timeline) == 3


def test_model_that_cannot_be_loaded_says_why(model_dir, tmp_path):
    with pytest.raises(PredictError, match="no model at"):
        load_predictor(str(tmp_path / "nothing"))
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.keras").write_bytes((model_dir / "model.keras").read_bytes())
    with pytest.raises(PredictError, match="meta.json is missing"):
        load_predictor(str(lone))
    (lone / "meta.json").write_text((model_dir / "meta.json").read_text())
    (lone / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PredictError, match="not a Keras 3 model file"):
        load_predictor(str(lone / "model.keras"))
    with pytest.raises(PredictError, match="cannot load 'models:/actionrec-nope@champion'"):
        load_predictor("models:/actionrec-nope@champion", f"sqlite:///{tmp_path / 'm.db'}")


def test_a_folder_yields_every_container_opencv_decodes(model_dir, tmp_path):
    """.m4v, .3gp, .wmv, .flv and an animated .gif in a folder are found and answered, as
    each is when named on its own (they used to be left out of a folder search)."""
    from PIL import Image

    from actionrec.predict import find_videos

    d = tmp_path / "more"
    d.mkdir()
    for ext, fourcc in ((".m4v", "mp4v"), (".3gp", "mp4v"), (".wmv", "WMV2"), (".flv", "FLV1")):
        write_video(d / f"clip{ext}", _frames(20), fourcc)
    frames = [Image.fromarray(f[..., ::-1]) for f in _frames(20)]
    frames[0].save(d / "clip.gif", save_all=True, append_images=frames[1:], duration=40)
    videos, problems = find_videos([str(d)])
    assert not problems
    assert sorted(v.suffix for v in videos) == [".3gp", ".flv", ".gif", ".m4v", ".wmv"]
    predictor = load_predictor(str(model_dir))
    for video in videos:
        result = predict_video(predictor, video, top_k=1)
        assert result.ok and result.n_frames == 20, (video, result.error)


@pytest.fixture
def mixed_dir(tmp_path) -> Path:
    """Good videos beside an empty file, a text file named .mp4, a truncated video and a
    non-video file (which is not an input at all)."""
    d = tmp_path / "videos"
    (d / "sub").mkdir(parents=True)
    write_video(d / "good.avi", _frames(30), "XVID")
    write_video(d / "sub" / "good.webm", _frames(12, seed=2), "VP80")
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("this is not a video\n")
    (d / "README.txt").write_text("not an input\n")
    good = write_video(tmp_path / "whole.avi", _frames(60), "XVID").read_bytes()
    (d / "truncated.avi").write_bytes(good[: len(good) // 2])
    return d


def test_cli_answers_good_files_reports_bad_ones_and_exits_1(model_dir, mixed_dir, tmp_path):
    proc = run_cmd(["actionrec", "predict", str(mixed_dir), str(tmp_path / "missing.avi"),
                    "--model", str(model_dir), "--top-k", "2"], cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "good.avi" in proc.stdout and "good.webm" in proc.stdout
    assert "empty file" in proc.stderr and "notes.mp4" in proc.stderr
    assert "no such file or folder" in proc.stderr and "README.txt" not in proc.stderr
    # A truncated file gives either the frames that survive or a clear error, never both.
    assert ("truncated.avi" in proc.stdout) != ("truncated.avi" in proc.stderr)
    assert "gave no answer" in proc.stderr
    header, rule, first, second = proc.stdout.splitlines()[:4]
    assert header.split() == ["video", "rank", "action", "probability"]
    assert first.split()[1] == "1" and second.split()[0] == "2"


@pytest.mark.backends
def test_cli_json_and_timeline_plot(model_dir, mixed_dir, tmp_path):
    good = mixed_dir / "good.avi"
    proc = run_cmd(["actionrec", "predict", str(good), str(mixed_dir / "notes.mp4"),
                    "--model", str(model_dir), "--json", "--window", "0.4",
                    "--plot", str(tmp_path / "plots")], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["architecture"] == "lrcn"
    by_video = {Path(r["video"]).name: r for r in out["results"]}
    assert by_video["notes.mp4"]["ok"] is False and "OpenCV cannot open" in \
        by_video["notes.mp4"]["error"]
    ans = by_video["good.avi"]
    assert ans["ok"] and ans["n_frames"] == 30 and len(ans["top_k"]) == 3
    assert [(s["start_s"], s["end_s"]) for s in ans["timeline"]] == [
        (0.0, 0.4), (0.4, 0.8), (0.8, 1.2)]
    assert abs(sum(t["probability"] for t in ans["top_k"]) - 1) < 1e-4
    png = tmp_path / "plots" / "good.avi.timeline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(png)).shape[1] > 600


def test_cli_refuses_bad_arguments_before_loading(model_dir, tmp_path):
    proc = run_cmd(["actionrec", "predict", "x.avi", "--model", str(model_dir),
                    "--stride", "1"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--stride needs --window" in proc.stderr
    proc = run_cmd(["actionrec", "predict", "x.avi", "--model", str(model_dir),
                    "--window", "-1"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "must be a positive number" in proc.stderr
    proc = run_cmd(["actionrec", "predict", "x.avi", "--model", str(tmp_path / "none")],
                   cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "no model at" in proc.stderr and "Traceback" not in proc.stderr


def test_model_uris_are_resolved_in_the_tracking_store_params_yaml_names(repo_params, tmp_path,
                                                                          monkeypatch):
    """The README's team set-up puts the server in mlflow.tracking_uri of params.yaml:
    `actionrec predict --model models:/...` looks there (after --tracking-uri and the
    environment), and in ./mlflow.db when there is no params file."""
    import yaml

    from actionrec.commands import predict_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert predict_tracking_uri("params.yaml") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    raw = {**repo_params, "mlflow": {**repo_params["mlflow"],
                                     "tracking_uri": "http://127.0.0.1:5000"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert predict_tracking_uri("params.yaml") == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert predict_tracking_uri("params.yaml") == "http://127.0.0.1:5001"


def test_predict_cli_on_real_clips_with_the_registry_champion(tiny_run, sample_dir):
    """`actionrec predict` resolves models:/...@champion in the project's own store (the
    default: sqlite:///mlflow.db where it runs) and answers as the model folder does."""
    repo = tiny_run
    best = champion(repo)
    clips = [str(sample_dir / "UCF-101" / c) for c in ("Punch", "Biking")]
    answers = []
    for model in (f"models:/actionrec-{best}@champion", str(repo / "models" / best)):
        proc = run_cmd(["actionrec", "predict", *clips, "--model", model, "--json"], cwd=repo)
        answers.append(json.loads(proc.stdout))
    from_registry, from_folder = answers
    assert from_registry["architecture"] == best
    assert len(from_registry["results"]) == 3 and all(r["ok"] for r in from_registry["results"])
    assert from_registry["results"] == from_folder["results"]
    classes = json.loads((repo / "data" / "classes.json").read_text())
    assert {t["action"] for r in from_registry["results"] for t in r["top_k"]} <= set(classes)
