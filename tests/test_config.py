"""params.yaml parsing: the shipped file and every profile validate; bad values are refused."""

from __future__ import annotations

import copy

import pytest
import yaml

from actionrec.commands import profile_args
from actionrec.config import flatten, load_params, parse_params, profile_overrides
from actionrec.errors import ConfigError


def test_shipped_params_describe_the_real_run(repo_params):
    cfg = parse_params(repo_params)
    assert cfg.profile == "full"
    assert cfg.data.source == "ucf101" and cfg.data.split == 1 and cfg.data.top_n == 5
    assert cfg.frames.sequence_length == 20
    assert cfg.models.image_sizes() == [64, 224, 600]


@pytest.mark.parametrize("name", ["tiny", "sample"])
def test_every_profile_validates_and_flattens(repo_params, name):
    overrides = profile_overrides(repo_params, name)
    assert overrides["profile"] == name
    assert all("." in k for k in overrides if k != "profile")
    assert overrides == {"profile": name, **flatten(repo_params["profiles"][name])}


def test_profile_args_are_shell_safe(repo_params, tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(repo_params))
    args = profile_args(str(path), "tiny")
    assert args[0::2] == ["-S"] * (len(args) // 2)
    assert "-S data.source=synthetic" in capsys.readouterr().out
    assert not any(ch.isspace() for a in args for ch in a)
    assert 'data.synthetic.actions=["sit_down","stand_up","walk","bend"]' in args


def test_unknown_profile_names_the_choices(repo_params):
    with pytest.raises(ConfigError, match=r"unknown profile 'huge'.*'sample', 'synthetic', 'tiny'"):
        profile_overrides(repo_params, "huge")


def _with(raw: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(raw)
    node = out
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return out


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("data.source", "youtube", r"data\.source: Input should be 'ucf101'"),
        ("frames.sequence_length", -3, r"frames\.sequence_length: .*greater than or equal to 2"),
        ("models.lrcn.image_size", -64, r"models\.lrcn\.image_size"),
        ("data.split", 4, r"data\.split"),
        ("data.val_fraction", 1.5, r"data\.val_fraction"),
        ("data.synthetic.actions", ["sit_down", "moonwalk"], r"unknown action\(s\) \['moonwalk'\]"),
        ("models.vgg16_bilstm.backbone", {"weights": "vgg.bin"},
         r"models\.vgg16_bilstm\.backbone\.weights: weights must"),
        ("models.lrcn.backbone", {"weights": None}, r"models\.lrcn\.backbone: this architecture"),
        ("models.lrcn.filters", [], r"models\.lrcn\.filters"),
        ("frames.sampling", "random", r"frames\.sampling"),
        ("data.classes", ["Punch"], r"at least two classes"),
        ("models.inceptionv3_gru.augment", {"flip": True},
         r"models\.inceptionv3_gru: .*augment needs training on frames.*fine_tune_layers"),
        ("models.convlstm.augment", {"zoom": 0.9}, r"models\.convlstm\.augment\.zoom"),
        ("gate.metrics", {"lrcn": ["top1_accuracy"]}, r"gate\.metrics: .*under 'default'"),
        ("gate.metrics", {"default": []}, r"gate\.metrics\.default"),
    ],
)
def test_bad_values_are_refused_naming_the_key(repo_params, key, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_params(_with(repo_params, key, value))
    assert "params.yaml" in str(info.value)


def test_a_typo_is_an_unknown_key_not_a_silent_default(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["frames"]["sequence_lenght"] = 30
    with pytest.raises(ConfigError, match=r"frames\.sequence_lenght: Extra inputs"):
        parse_params(raw)


def test_ucf101_top5_only_has_split_1(repo_params):
    raw = _with(_with(repo_params, "data.source", "ucf101_top5"), "data.split", 2)
    with pytest.raises(ConfigError, match="only ships split 1"):
        parse_params(raw)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
