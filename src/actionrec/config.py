"""``params.yaml`` -> typed, validated settings.

The file is validated with pydantic; any bad value is refused with a
:class:`~actionrec.errors.ConfigError` whose message names the key
(``data.source``, ``frames.sequence_length``...) before a stage does any work.

Profiles (``profiles:`` in params.yaml, e.g. ``tiny``) are bundles of overrides that
are applied **by DVC** as ``-S key=value`` arguments, so that every value a stage
uses is a real DVC parameter (precise reruns, visible in ``dvc exp show``)::

    dvc exp run $(actionrec profile tiny)
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from actionrec.errors import ConfigError
from actionrec.models.registry import SETTINGS as _ARCH_SETTINGS
from actionrec.models.settings import ArchSettings

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

#: The actions the synthetic generator can draw (``data.synthetic.actions``); each has a
#: pose function in :data:`actionrec.data.synthetic.ACTIONS`, which checks that it has all.
SYNTHETIC_ACTIONS = ("sit_down", "stand_up", "wave", "jumping_jack", "walk", "punch", "bend")
#: The architectures of the pipeline (``train@<arch>`` in dvc.yaml), each with a
#: section under ``models:``: the settings classes of :mod:`actionrec.models.registry`,
#: in the order they are defined (the docs' tables follow it).
ARCHITECTURES: tuple[str, ...] = tuple(_ARCH_SETTINGS)


class _Strict(BaseModel):
    """Refuses unknown keys, so that a typo in params.yaml is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class FileSource(_Strict):
    """One place a file can be fetched from (``data.ucf101.videos`` / ``.splits`` list it).

    ``layout`` (videos only): ``class_folders`` is the official RAR's
    ``UCF-101/<Class>/<clip>.avi``; ``flat`` is one folder of every clip (the THUMOS 2014
    mirror's zip), sorted into class folders by the split lists. ``verify_tls: false``
    skips certificate checks and is accepted only with a pinned ``sha256``, which then
    guarantees the bytes.
    """

    url: str
    sha256: Sha256 | None = None
    layout: Literal["class_folders", "flat"] = "class_folders"
    verify_tls: bool = True

    @model_validator(mode="after")
    def _tls_needs_a_pin(self) -> FileSource:
        if not self.verify_tls and self.sha256 is None:
            raise ValueError(f"verify_tls: false for {self.url} needs its sha256 pinned "
                             "(the hash is then what guarantees the bytes)")
        return self


class UCF101Source(_Strict):
    """The official release: the videos (a RAR, or a mirror's zip) and the split lists,
    each from an ordered list of sources; the download stage takes the first that works."""

    videos: Annotated[list[FileSource], Field(min_length=1)]
    splits: Annotated[list[FileSource], Field(min_length=1)]


class UCF101Top5Source(_Strict):
    """The pre-made top-5 tarball of the Keras CNN-RNN video classification example."""

    url: str
    sha256: str | None = None


class LocalSource(_Strict):
    """An existing folder in the UCF101 layout (``UCF-101/<Class>/`` + ``ucfTrainTestlist/``)."""

    root: str


class SyntheticSource(_Strict):
    """Procedural stick-figure videos written with OpenCV; see :mod:`actionrec.data.synthetic`."""

    actions: list[str] = Field(min_length=2)
    groups: PositiveInt = 10
    test_groups: PositiveInt = 3
    clips_per_group: PositiveInt = 4
    min_frames: PositiveInt = 40
    max_frames: PositiveInt = 80
    width: Annotated[int, Field(ge=32, le=1920)] = 160
    height: Annotated[int, Field(ge=32, le=1080)] = 120
    fps: Annotated[float, Field(gt=0, le=120)] = 25.0
    seed: NonNegInt = 0
    variation: Fraction = 1.0  # how much groups differ in look (1 full, 0 all alike)

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, actions: list[str]) -> list[str]:
        unknown = [a for a in actions if a not in SYNTHETIC_ACTIONS]
        if unknown:
            raise ValueError(f"unknown action(s) {unknown}; known: {sorted(SYNTHETIC_ACTIONS)}")
        if len(set(actions)) != len(actions):
            raise ValueError(f"actions must be distinct, got {actions}")
        return actions

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticSource:
        if self.test_groups >= self.groups:
            raise ValueError(
                f"test_groups ({self.test_groups}) must be smaller than groups ({self.groups}) "
                "so that some groups are left for training"
            )
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames ({self.min_frames}) > max_frames ({self.max_frames})")
        return self


class DownloadSettings(_Strict):
    """HTTP behaviour of the network sources."""

    retries: Annotated[int, Field(ge=1, le=20)] = 4
    timeout_s: Annotated[float, Field(gt=0)] = 15.0
    backoff_s: Annotated[float, Field(ge=0)] = 1.0
    chunk_bytes: Annotated[int, Field(ge=1024)] = 1 << 20


class DataSettings(_Strict):
    """Where the videos come from and which of them the pipeline uses."""

    source: Literal["ucf101", "ucf101_top5", "local", "synthetic"]
    split: Literal[1, 2, 3] = 1
    top_n: PositiveInt | None = 5
    classes: list[str] | None = None
    val_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    val_seed: NonNegInt = 42
    missing_videos: Literal["fail", "drop"] = "fail"
    max_bad_fraction: Fraction = 0.02
    download: DownloadSettings = DownloadSettings()
    ucf101: UCF101Source
    ucf101_top5: UCF101Top5Source
    local: LocalSource
    synthetic: SyntheticSource

    @model_validator(mode="after")
    def _selection(self) -> DataSettings:
        if self.classes is not None:
            if len(self.classes) < 2:
                raise ValueError("classes: give at least two classes, or null to use top_n")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"classes: must be distinct, got {self.classes}")
        elif self.top_n is None:
            raise ValueError("set either top_n or an explicit classes list")
        elif self.top_n < 2:
            raise ValueError("top_n must be at least 2 (a classifier needs two classes)")
        if self.source == "ucf101_top5" and self.split != 1:
            raise ValueError("source ucf101_top5 only ships split 1; set data.split: 1")
        known = self.known_class_count()
        if known is not None and self.classes is None and self.top_n and self.top_n > known:
            raise ValueError(f"data.top_n: {self.top_n} is more than the {known} classes of "
                             f"source {self.source}; set at most {known}")
        return self

    def known_class_count(self) -> int | None:
        """How many classes ``source`` has, where that is known without the data: UCF101's
        101 (Soomro et al. 2012), the top-5 tarball's 5, the synthetic actions; ``None``
        for a local folder."""
        return {"ucf101": 101, "ucf101_top5": 5,
                "synthetic": len(self.synthetic.actions)}.get(self.source)


class ValidateSettings(_Strict):
    """Bounds checked by the Great Expectations suite (``validate`` stage)."""

    min_frames: PositiveInt = 16
    max_frames: PositiveInt = 5000
    min_fps: Annotated[float, Field(gt=0)] = 5.0
    max_fps: Annotated[float, Field(gt=0)] = 60.0
    min_width: PositiveInt = 64
    min_height: PositiveInt = 64
    workers: NonNegInt = 0

    @model_validator(mode="after")
    def _bounds(self) -> ValidateSettings:
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames ({self.min_frames}) > max_frames ({self.max_frames})")
        if self.min_fps > self.max_fps:
            raise ValueError(f"min_fps ({self.min_fps}) > max_fps ({self.max_fps})")
        return self


class FrameSettings(_Strict):
    """How a clip becomes a ``(T, H, W, 3)`` uint8 array (``extract_frames`` stage)."""

    sequence_length: Annotated[int, Field(ge=2, le=512)] = 20
    sampling: Literal["uniform", "first"] = "uniform"
    short_clip: Literal["pad", "loop"] = "pad"
    crop: Literal["center", "none"] = "center"
    clips_per_shard: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    workers: NonNegInt = 0
    engine: Literal["local", "ray"] = "local"

    def clip_settings(self) -> dict[str, Any]:
        """The settings that decide a stored clip's pixels (not how the store is laid out
        or how many processes decode): what a model's results depend on."""
        return {k: getattr(self, k) for k in ("sequence_length", "sampling", "short_clip",
                                              "crop")}


class _ModelsBase(_Strict):
    """Each architecture's section (classes in :mod:`actionrec.models.settings`); one field
    per architecture, named as it (:class:`ModelsSettings` is made from the registry).

    ``dvc.yaml`` runs every architecture (``train@<arch>``); train one alone with
    ``dvc repro train@lrcn``.
    """

    def get(self, name: str) -> ArchSettings:
        """The section of architecture ``name``."""
        return getattr(self, name)

    def image_sizes(self) -> list[int]:
        """Distinct input image sizes (pixels, square) of the architectures, sorted."""
        return sorted({self.get(a).image_size for a in ARCHITECTURES})


#: ``models:`` of params.yaml: a required field per registered architecture.
ModelsSettings = create_model(
    "ModelsSettings", __base__=_ModelsBase, __module__=__name__,
    **{name: (cls, ...) for name, cls in _ARCH_SETTINGS.items()},
)


class MlflowSettings(_Strict):
    """Where runs go; ``$MLFLOW_TRACKING_URI`` overrides ``tracking_uri``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    tracking_uri: str | None = None  # None: sqlite:///<repo>/mlflow.db
    experiment: str | None = None  # None: actionrec-<profile>
    register_models: bool = Field(True, alias="register")  # as actionrec-<arch>
    system_metrics_interval_s: NonNegFloat = 10.0  # 0: no system metrics
    ui_url: str = "http://127.0.0.1:5000"  # `mlflow ui`'s address, for links to a local store


class TrainSettings(_Strict):
    """How ``train@<arch>`` uses the machine. What each value means: the comments of
    ``train:`` in params.yaml; how ``distribute`` is done:
    :func:`actionrec.training.distribution`."""

    distribute: Literal["auto", "none", "multihost"] = "auto"
    peer_timeout_s: Annotated[int, Field(ge=5)] = 60
    # 0 or 1: read in the loop, one batch at a time (Keras starts its threads from 2 on)
    loader_workers: NonNegInt = 2


class EvaluateSettings(_Strict):
    """Test-split metrics, their intervals over test groups (:mod:`actionrec.stats`), and
    the latency measurement (``evaluate`` and ``compare`` stages)."""

    top_k: Annotated[int, Field(ge=1)] = 3
    latency_warmup: NonNegInt = 2
    latency_runs: PositiveInt = 10
    interval_level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    resamples: Annotated[int, Field(ge=100)] = 2000
    # temporal views per test video (actionrec.data.video.view_indices); 1: one view
    views: Annotated[int, Field(ge=1, le=32)] = 5


class CompareSettings(_Strict):
    """The champion rule of the ``compare`` stage (:func:`actionrec.stats.choose_champion`):
    among the architectures not significantly worse than the best by ``metric`` (paired
    tests over test groups, Holm-adjusted, at ``alpha``), the cheapest by ``cost``."""

    metric: Literal["top1_accuracy", "macro_f1"] = "macro_f1"
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    cost: Annotated[list[Literal["latency_ms", "parameters"]], Field(min_length=1)] = [
        "latency_ms", "parameters"]


MetricList = Annotated[list[str], Field(min_length=1)]


class GateSettings(_Strict):
    """The CI regression gate (``actionrec gate``, ``ci/tiny_pipeline.sh``); no stage uses it.

    ``metrics`` maps an architecture to the ``metrics.json`` keys gated for it, and
    ``tolerance`` to the largest drop allowed in them; ``default`` is used for every
    architecture not named (a plain list, or a plain number, means the same for all). The
    values and why: params.yaml's ``gate:``.
    """

    baseline: str = "ci/baseline"  # committed <arch>/metrics.json of the tiny profile
    metrics: dict[str, MetricList] = {
        "default": ["top1_accuracy", "macro_f1", "train_top1_accuracy"]}
    tolerance: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = {
        "default": 0.079, "inceptionv3_gru": 0.125}

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {"default": v}
        if isinstance(v, dict) and "default" not in v:
            raise ValueError("name the metrics of every other architecture under 'default'")
        return v

    @field_validator("tolerance", mode="before")
    @classmethod
    def _tolerance(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {"default": v}
        if isinstance(v, dict) and "default" not in v:
            raise ValueError("name the tolerance of every other architecture under 'default'")
        return v

    def metrics_for(self, architecture: str) -> list[str]:
        """The gated metric keys of ``architecture``."""
        return self.metrics.get(architecture, self.metrics["default"])

    def tolerance_for(self, architecture: str) -> float:
        """The largest drop allowed in ``architecture``'s gated metrics (absolute)."""
        return self.tolerance.get(architecture, self.tolerance["default"])


class SearchDimension(_Strict):
    """One hyper-parameter of a sweep: a range (``low``, ``high``; ``log`` scale; ``step``)
    or ``choices``. A range of whole numbers (``low: 8``, ``high: 64``) draws whole numbers
    (Optuna's ``suggest_int``), any other range real numbers (``suggest_float``); choices
    are drawn as given (a list, such as LSTM ``units: [128]``, is one choice)."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SearchDimension:
        if self.choices is not None:
            if any(v is not None for v in (self.low, self.high, self.step)) or self.log:
                raise ValueError("give either choices or low/high (log, step), not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined (Optuna)")
        return self

    @property
    def whole_numbers(self) -> bool:
        """Whether the range draws integers: ``low``, ``high`` (and ``step``) are ints."""
        return self.choices is None and all(
            isinstance(v, int) and not isinstance(v, bool)
            for v in (self.low, self.high, self.step) if v is not None)


class SweepSettings(_Strict):
    """``actionrec sweep ARCH --trials N``: a hyper-parameter search with Optuna, shared by
    every process that runs the same command against the same ``storage`` (docs/scaling.md,
    "Scaling out"). No stage reads it.

    ``space`` keys are settings of ``models.<ARCH>`` (``learning_rate``, ``dropout``,
    ``units``, ``epochs``, ...): the ones ``train@<ARCH>`` reads, so a trial retrains on the
    stored frames or features as they are.
    """

    metric: str = "val_macro_f1"  # an epoch metric of the validation split (history.csv)
    direction: Literal["maximize", "minimize"] = "maximize"
    # Optuna storage that every worker of the study uses; null: sqlite:///sweeps/optuna.db
    # here (processes of one machine). The team server's PostgreSQL: docs/scaling.md.
    storage: str | None = None
    study: str | None = None  # null: actionrec-<arch>-<profile>
    # the TPE sampler's seed (the study's creator's; a joining worker draws its own)
    seed: NonNegInt = 0
    pruner: Literal["median", "none"] = "median"
    pruner_startup_trials: NonNegInt = 2  # finished trials before any trial is pruned
    pruner_warmup_epochs: NonNegInt = 1  # epochs of a trial never pruned
    # A worker records a heartbeat this often while it trains; a trial without one for
    # 2 x heartbeat_s (its worker killed, its host lost) is marked failed and run again
    # (once) by a worker still there.
    heartbeat_s: Annotated[int, Field(ge=1, le=3600)] = 20
    space: Annotated[dict[str, SearchDimension], Field(min_length=1)] = {
        "learning_rate": SearchDimension(low=1e-4, high=1e-2, log=True),
        "dropout": SearchDimension(low=0.2, high=0.6),
    }
    # Points tried first, in this order ({space key: value}; keys left out are drawn), e.g.
    # today's settings as the sweep's reference: Optuna's enqueue_trial.
    enqueue: list[dict[str, Any]] = []


class ProtocolSettings(_Strict):
    """``actionrec protocol`` (:mod:`actionrec.protocol`): the official splits to run, and
    the runs of each (each with its own seed); no stage reads it."""

    splits: Annotated[list[Literal[1, 2, 3]], Field(min_length=1)] = [1, 2, 3]
    runs_per_split: Annotated[int, Field(ge=1, le=10)] = 1

    @field_validator("splits")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"each split once: {v}")
        return sorted(v)


class Params(_Strict):
    """The whole of ``params.yaml`` (less the ``profiles`` table)."""

    profile: str = "full"  # informational: which profile's overrides were applied
    seed: NonNegInt = 42
    data: DataSettings
    validate_: ValidateSettings = Field(alias="validate")
    frames: FrameSettings
    models: ModelsSettings
    train: TrainSettings = TrainSettings()
    mlflow: MlflowSettings = MlflowSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    compare: CompareSettings = CompareSettings()
    gate: GateSettings = GateSettings()
    sweep: SweepSettings = SweepSettings()
    protocol: ProtocolSettings = ProtocolSettings()

    def experiment_name(self) -> str:
        """MLflow experiment: ``mlflow.experiment`` or ``actionrec-<profile>``."""
        return self.mlflow.experiment or f"actionrec-{self.profile}"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in; mappings merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def with_profile(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """``raw`` with profile ``name`` applied (and ``profile: name``); not validated.

    Raises:
        ConfigError: an unknown profile.
    """
    profiles = raw.get("profiles") or {}
    if name != "full" and name not in profiles:
        raise ConfigError(f"unknown profile {name!r}; defined: {['full', *sorted(profiles)]}")
    return deep_merge(raw, {"profile": name, **(profiles.get(name) or {})})


def profile_overrides(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The dotted ``key: value`` overrides that profile ``name`` applies, validated.

    ``profile`` itself is set to ``name`` so that ``dvc exp show`` shows it.

    Raises:
        ConfigError: an unknown profile, or one whose values do not validate.
    """
    parse_params(with_profile(raw, name), source=f"params.yaml (profile {name})")
    return {"profile": name, **flatten((raw.get("profiles") or {}).get(name) or {})}


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} invalid setting(s):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        msg = e["msg"].removeprefix("Value error, ")
        if msg.startswith(f"{key}."):  # a check across fields names its key itself
            lines.append(f"  {msg}")
        else:
            lines.append(f"  {key}: {msg}{got_s}")
    lines.append("Fix the key(s) above in params.yaml (or the -S override) and run again. "
                 "Nothing ran and no output was removed; `git checkout params.yaml` undoes "
                 "an override that `dvc exp run -S` wrote there (the failed experiment is "
                 "not kept).")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping into :class:`Params` (the ``profiles`` table is set aside).

    Raises:
        ConfigError: a value is missing, of the wrong type, out of range or unknown.
    """
    raw = {k: v for k, v in raw.items() if k != "profiles"}
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def read_raw(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """The params file as a plain mapping (nothing validated yet).

    Raises:
        ConfigError: the file is missing, is not YAML, or is not a mapping.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_params(path: str | os.PathLike[str] = "params.yaml", stage: str | None = None) -> Params:
    """Read and validate a params file.

    Args:
        stage: the DVC stage this process runs (``train@lrcn``): nothing here uses it; the
            tests' settings-read recorder (``tests/instruments/sitecustomize.py``), switched
            on in the stages' processes by ``$ACTIONREC_PARAMS_LOG``, records under it.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds an invalid value.
    """
    return parse_params(read_raw(path), source=str(path))


#: Settings that change no result of any stage, so no stage declares them as a DVC param
#: (changing them reruns nothing): where runs are logged and shown, how often system
#: metrics are sampled, how many threads read or decode and on which engine (the same
#: bytes: tests/test_frames.py), how hard a download is
#: retried (the bytes are pinned by sha256 or the download fails), and how long a
#: multi-host job waits for a process. A stage may read them.
RESULT_NEUTRAL = ("mlflow.tracking_uri", "mlflow.ui_url", "mlflow.system_metrics_interval_s",
                  "train.loader_workers", "train.peer_timeout_s", "validate.workers",
                  "frames.workers", "frames.engine", "data.download")
