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


def _second_defaults(model, raw: dict, prefix: str = "", default=None) -> list[str]:
    """Every setting that ``raw`` (params.yaml) sets and whose schema default differs from
    it: ``"key: schema default X, params.yaml Y"``. A nested section's default is its
    parent's default instance where there is one (``LRCNSettings.augment``'s own), else
    its class's field defaults."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    out = []
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        if key not in raw:
            continue
        if default is not None:
            d = getattr(default, name)
        elif field.default is PydanticUndefined and field.default_factory is None:
            d = PydanticUndefined  # required: params.yaml is the only owner
        else:
            d = field.get_default(call_default_factory=True)
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out += _second_defaults(value, raw[key], f"{prefix}{key}.",
                                    d if isinstance(d, BaseModel) else None)
        elif d is not PydanticUndefined and d != value:
            out.append(f"{prefix}{key}: schema default {d!r}, params.yaml {value!r}")
    return out


def test_params_yaml_owns_every_value_it_sets(repo_params):
    """A setting that params.yaml sets has no other default in the schema: required there,
    or its default is params.yaml's value (code that builds settings without params.yaml,
    e.g. tests, gets the real run's values). Drifted before: data.synthetic's groups,
    test_groups, clips_per_group and max_frames (8, 2, 3, 60 against 10, 3, 4, 80)."""
    raw = {k: v for k, v in repo_params.items() if k != "profiles"}
    assert _second_defaults(parse_params(raw, source="params.yaml"), raw) == []


def test_a_drifted_default_is_found(repo_params):
    raw = copy.deepcopy({k: v for k, v in repo_params.items() if k != "profiles"})
    raw["data"]["synthetic"]["groups"] = 12
    raw["models"]["lrcn"]["augment"] = {"flip": False, "translation": 0.1, "zoom": 0.1}
    assert _second_defaults(parse_params(raw, source="params.yaml"), raw) == [
        "data.synthetic.groups: schema default 10, params.yaml 12",
        "models.lrcn.augment.flip: schema default True, params.yaml False"]
