"""dvc.yaml against the code: each stage's code deps are its import closure, its params are
what its code reads, and a change reruns exactly the stages it touches.

The import closure is read from the source by grimp (the engine of import-linter): every
``import`` counts, lazy ones inside functions too, with the ``__init__.py`` of each package
on the way. What the tiny run really did is in its ``logs/params_read.jsonl``: the settings
each stage read and the ``actionrec`` modules it imported
(``tests/instruments/sitecustomize.py``, switched on there by the tiny run)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import yaml

from actionrec.config import ARCHITECTURES, RESULT_NEUTRAL, GateSettings, flatten
from tests.helpers import REPO, copy_project, run_cmd

#: Files a module uses without importing them: tracking logs mlflow_model.py by path, as
#: MLflow's "models from code" (tracking.log_model), so its code is part of every run.
FILE_EDGES = {"actionrec.tracking.runs": {"actionrec.mlflow_model"}}
#: Stages that import their architecture's model file by name
#: (actionrec.models.get_architecture -> actionrec/models/<arch>.py).
ARCH_MODULE_STAGES = {"extract_features", "train"}
ARCH_MODULE = "src/actionrec/models/${key}.py"
#: Sections of which a stage reads only the one another setting selects: download reads
#: the section data.source names, and declares them all (see dvc.yaml).
ALTERNATIVES = {"download": ("data.ucf101", "data.ucf101_top5", "data.local", "data.synthetic")}
#: Stages that validate the whole params file and declare all of it: their output is the
#: same for any valid params, so they rerun (in seconds) on any change and rerun nothing.
WHOLE_FILE_STAGES = {"check_params"}
STAGE_MODULES = ("check_params", "download", "subsample", "validate", "extract_frames",
                 "extract_views", "extract_features", "train", "evaluate", "compare")


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("actionrec", cache_dir=None)


def closure(graph: grimp.ImportGraph, roots: list[str]) -> set[str]:
    """Every ``actionrec`` module that importing ``roots`` can run: imports (lazy ones too),
    the packages above each module, and :data:`FILE_EDGES`."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += graph.find_modules_directly_imported_by(module)
        todo += FILE_EDGES.get(module, ())
    return seen


def module_file(module: str) -> str:
    """``actionrec.data.frames`` -> ``src/actionrec/data/frames.py`` (packages: __init__.py)."""
    path = REPO / "src" / Path(*module.split("."))
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
               .relative_to(REPO))


def file_module(path: str) -> str:
    """The inverse of :func:`module_file`."""
    rel = Path(path).relative_to("src").with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def expected_code_deps(graph: grimp.ImportGraph, stage: str) -> list[str]:
    """What ``stage``'s ``deps`` in dvc.yaml must list of the code (``stages/``, ``src/``)."""
    files = sorted(module_file(m) for m in closure(graph, [f"actionrec.pipeline.{stage}"]))
    extra = [ARCH_MODULE] if stage in ARCH_MODULE_STAGES else []
    return [f"stages/{stage}.py", "stages/_own_src.py", *files, *extra]


def _dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _stage_body(stage: dict) -> dict:
    return stage["do"] if "foreach" in stage else stage


def test_every_stage_has_a_stage_module_and_the_per_architecture_ones_iterate_models():
    stages = _dvc_stages()
    assert set(stages) == set(STAGE_MODULES)
    for name in ("extract_features", "train", "evaluate"):
        assert stages[name]["foreach"] == "${models}", name  # one stage per models: section


def test_dvc_yaml_code_deps_are_each_stages_import_closure():
    graph = _graph()
    problems = []
    for name, stage in _dvc_stages().items():
        declared = [d for d in _stage_body(stage)["deps"] if d.startswith(("src/", "stages/"))]
        expected = expected_code_deps(graph, name)
        missing = sorted(set(expected) - set(declared))
        extra = sorted(set(declared) - set(expected))
        if missing or extra:
            listing = "\n".join(f"      - {d}" for d in expected)
            problems.append(f"stage {name}: missing {missing}, not imported {extra}; its code "
                            f"deps should be (`python -m tests.test_stage_deps --write` "
                            f"rewrites them):\n{listing}")
    assert not problems, "\n\n".join(problems)


def test_the_closures_are_narrow_where_they_should_be():
    """The point of the layout: a command that is not a stage reruns nothing, and the data
    stages do not depend on the model, training or tracking code."""
    graph = _graph()
    every = set().union(*(expected_code_deps(graph, s) for s in STAGE_MODULES))
    for module in ("predict", "server", "commands", "cli", "gate"):
        assert f"src/actionrec/{module}.py" not in every, module
    download = expected_code_deps(graph, "download")
    assert "src/actionrec/data/archives.py" in download
    for module in ("training.py", "tracking.py", "features.py", "models/layers.py"):
        assert f"src/actionrec/{module}" not in download, module
    assert not any(f.startswith("src/actionrec/data/") and "archives" in f
                   for f in expected_code_deps(graph, "train"))


def test_an_upward_import_breaks_the_layering_contract(tmp_path):
    """`make lint` runs lint-imports; an import from a lower layer back up fails it."""
    for name in ("src", "pyproject.toml"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, tmp_path / name)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    lint = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    ok = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    registry = tmp_path / "src" / "actionrec" / "models" / "registry.py"
    registry.write_text(registry.read_text() + "\nfrom actionrec.models import settings  # noqa\n")
    config = tmp_path / "src" / "actionrec" / "config.py"
    config.write_text(config.read_text() + "\nimport actionrec.training  # noqa\n")
    bad = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "actionrec.config -> actionrec.training" in bad.stdout
    assert "actionrec.models.registry -> actionrec.models.settings" in bad.stdout
    assert "2 broken" in bad.stdout


def test_gate_defaults_agree_with_params_yaml(repo_params):
    assert GateSettings().model_dump() == GateSettings.model_validate(
        repo_params["gate"]).model_dump()


# --- what the tiny run did -------------------------------------------------------------


def _run_log(tiny_run: Path) -> dict[str, dict[str, set[str]]]:
    """``{stage: {"read": keys, "modules": modules}}`` from the run's params-read log."""
    out: dict[str, dict[str, set[str]]] = {}
    for line in (tiny_run / "logs" / "params_read.jsonl").read_text().splitlines():
        entry = json.loads(line)
        rec = out.setdefault(entry["stage"], {"read": set(), "modules": set()})
        rec["read"] |= set(entry["read"])
        rec["modules"] |= set(entry["modules"])
    return out


def _lock(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())["stages"]


def _covers(key: str, other: str) -> bool:
    """``key`` is ``other`` or a section above it (``models.lrcn`` covers ``models.lrcn.l2``)."""
    return other == key or other.startswith(key + ".")


def test_each_stage_declares_exactly_the_params_its_code_reads(tiny_run):
    log, lock = _run_log(tiny_run), _lock(tiny_run)
    params = yaml.safe_load((tiny_run / "params.yaml").read_text())
    leaves = set(flatten({k: v for k, v in params.items() if k != "profiles"}))
    assert set(log) == set(lock) - WHOLE_FILE_STAGES, "every stage recorded its reads"
    for stage in WHOLE_FILE_STAGES:
        assert _dvc_stages()[stage]["params"] == [{"params.yaml": None}]
    problems = []
    for stage, rec in sorted(log.items()):
        declared = set(lock[stage].get("params", {}).get("params.yaml", {}))
        # a section read whole (model_dump) reads every setting under it
        read = set()
        for key in rec["read"]:
            read |= {leaf for leaf in leaves if _covers(key, leaf)} or {key}
        needed = {r for r in read if r not in RESULT_NEUTRAL}
        undeclared = sorted(r for r in needed if not any(_covers(d, r) for d in declared))
        unread = sorted(d for d in declared
                        if not any(_covers(d, r) or _covers(r, d) for r in read)
                        and d not in ALTERNATIVES.get(stage, ()))
        neutral = sorted(d for d in declared if any(_covers(d, n) for n in RESULT_NEUTRAL))
        if undeclared or unread or neutral:
            problems.append(f"{stage}: reads but does not declare {undeclared}; declares but "
                            f"does not read {unread}; declares result-neutral {neutral}")
    assert not problems, "\n".join(problems)


def test_each_stage_ran_only_code_its_deps_list(tiny_run):
    """The import closure is a static over-estimate; this checks it against the modules the
    stages really imported (an ``importlib`` import by name would escape grimp)."""
    log, lock = _run_log(tiny_run), _lock(tiny_run)
    for stage, rec in log.items():
        deps = {d["path"] for d in lock[stage]["deps"]}
        ran = {module_file(m) for m in rec["modules"]}
        assert ran <= deps, f"{stage} imported {sorted(ran - deps)}, not in its dvc.yaml deps"
        base = stage.split("@")[0]
        if "@" in stage and base in ARCH_MODULE_STAGES:
            arch = stage.split("@")[1]
            assert f"src/actionrec/models/{arch}.py" in deps


@pytest.fixture(scope="module")
def project_copy(tiny_run, tmp_path_factory) -> Path:
    """A private copy of the tiny run for status checks (outputs are not changed)."""
    return copy_project(tiny_run, tmp_path_factory.mktemp("deps") / "project")


def _changed(project: Path) -> set[str]:
    """Stages whose deps, params or command changed (``dvc status``): what ``dvc repro``
    would run first. Stages below them rerun only if those produce different outputs."""
    proc = run_cmd(["dvc", "status", "--json"], cwd=project)
    return {name for name in json.loads(proc.stdout) if "@" in name or name in STAGE_MODULES}


def _set_param(project: Path, dotted: str, value) -> str:
    """Set ``dotted`` in the project's params.yaml; returns the old text."""
    path = project / "params.yaml"
    old = path.read_text()
    raw = yaml.safe_load(old)
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return old


@pytest.mark.slow
def test_a_knob_of_one_architecture_changes_only_its_stages(project_copy):
    project = project_copy
    assert _changed(project) == set(), "the copied run starts up to date"
    others = [a for a in ARCHITECTURES if a != "lrcn"]
    cases = {
        "models.lrcn.image_size": (40, {"extract_frames", "extract_views",
                                        "extract_features@lrcn", "train@lrcn",
                                        "evaluate@lrcn"}),
        "models.lrcn.epochs": (3, {"train@lrcn"}),
        "models.inceptionv3_gru.backbone.weights": (
            "weights/inception.h5", {"extract_features@inceptionv3_gru",
                                     "train@inceptionv3_gru"}),
        "mlflow.tracking_uri": ("http://127.0.0.1:5999", set()),
        "train.loader_workers": (0, set()),
        # extract_features@ reads T from its frames folder, which extract_frames rewrites
        "frames.sequence_length": (6, {"extract_frames", "extract_views",
                                       *(f"train@{a}" for a in ARCHITECTURES)}),
        "data.ucf101": ({"videos": [{"url": "http://127.0.0.1:1/x.rar"}],
                         "splits": [{"url": "http://127.0.0.1:1/s.zip"}]}, {"download"}),
        "data.synthetic.seed": (9, {"download"}),
        # the test clips' views: their extraction and every evaluation; no training, no
        # re-extraction of the frames training reads, no backbone features
        "evaluate.views": (3, {"extract_views", *(f"evaluate@{a}" for a in ARCHITECTURES)}),
    }
    for key, (value, expected) in cases.items():
        old = _set_param(project, key, value)
        try:  # check_params validates any change first: seconds, and its output is constant
            assert _changed(project) == {"check_params", *expected}, key
        finally:
            (project / "params.yaml").write_text(old)
    assert not any(f"train@{a}" in cases["models.lrcn.image_size"][1] for a in others)


@pytest.mark.slow
def test_a_one_line_edit_of_a_module_changes_exactly_the_stages_that_import_it(project_copy):
    """Append a comment to a module of src/actionrec, ask DVC which stages changed, compare
    with the stages whose import closure holds the module (dvc.lock's deps). One module of
    each distinct set of importing stages (the modules that no stage imports included):
    within a set DVC treats every path alike, and test_dvc_yaml_code_deps_are_each_stages_
    import_closure already holds each module's set to dvc.yaml. (Every module, 1.4 s of
    `dvc status` each, took 80 s; the sets are about a third as many.)"""
    from dvc.repo import Repo

    project = project_copy
    lock = _lock(project)
    uses: dict[str, set[str]] = {}
    for stage, body in lock.items():
        for dep in body["deps"]:
            uses.setdefault(dep["path"], set()).add(stage)
    modules = sorted(p.relative_to(project).as_posix()
                     for p in (project / "src" / "actionrec").rglob("*.py"))
    assert len(modules) > 40
    by_stages: dict[frozenset[str], str] = {}
    for rel in modules:
        by_stages.setdefault(frozenset(uses.get(rel, ())), rel)
    assert len(by_stages) > 8  # stage closures differ: a few shared sets would be a bug
    problems = []
    for rel in by_stages.values():
        path = project / rel
        text = path.read_text()
        path.write_text(text + "# a one-line edit\n")
        try:
            with Repo(str(project)) as repo:  # keys: "<dvc.yaml path>:<stage>"
                changed = {name.rsplit(":", 1)[-1] for name in repo.status()}
        finally:
            path.write_text(text)
        if changed != uses.get(rel, set()):
            problems.append(f"{rel}: changed {sorted(changed)}, expected "
                            f"{sorted(uses.get(rel, set()))}")
    assert not problems, "\n".join(problems)
    for rel in ("src/actionrec/predict.py", "src/actionrec/server.py"):
        assert rel not in uses, f"{rel} reruns no stage"
    assert {s for s in uses["src/actionrec/data/archives.py"]} == {"download"}
    assert uses["src/actionrec/models/lrcn.py"] == {"extract_features@lrcn", "train@lrcn"}


def _ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", stdout))


@pytest.mark.slow
def test_one_architectures_image_size_reruns_its_stages_its_frames_and_compare(
        tiny_run, tmp_path):
    """A real `dvc repro`: extract_frames and extract_views rerun (they store the sizes), but
    the folders of the other sizes come out bit-identical, so nothing of the other four
    architectures runs."""
    project = copy_project(tiny_run, tmp_path / "project")
    before = {d["path"]: d.get("md5") for d in _lock(project)["train@inceptionv3_gru"]["deps"]}
    _set_param(project, "models.lrcn.image_size", 40)
    _set_param(project, "models.lrcn.epochs", 1)
    proc = run_cmd(["dvc", "repro"], cwd=project, timeout=1200)
    assert _ran(proc.stdout) == {"check_params", "extract_frames", "extract_views",
                                 "extract_features@lrcn", "train@lrcn", "evaluate@lrcn",
                                 "compare"}, proc.stdout[-3000:]
    for arch in ARCHITECTURES[1:]:
        assert f"Stage 'train@{arch}' didn't change, skipping" in proc.stdout
    after = {d["path"]: d.get("md5") for d in _lock(project)["train@inceptionv3_gru"]["deps"]}
    assert after == before
    assert (project / "data" / "frames" / "40" / "index.csv").is_file()
    assert json.loads((project / "models" / "lrcn" / "meta.json").read_text())[
        "image_size"] == 40


@pytest.mark.slow
def test_a_stage_runs_its_own_trees_code_not_the_installed_checkout(tiny_run, tmp_path):
    """In a copy of the tree (as `dvc exp run --temp` and queued experiments make) the
    stages import the copy's src/, which DVC hashed, not the checkout that the editable
    install points at."""
    project = copy_project(tiny_run, tmp_path / "project")
    frames = project / "src" / "actionrec" / "data" / "frames.py"
    lock_before = (project / "dvc.lock").read_text()
    frames.write_text(frames.read_text() + '\nraise RuntimeError("the copy\'s own frames.py")\n')
    proc = run_cmd(["dvc", "repro", "extract_frames"], cwd=project, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "RuntimeError: the copy's own frames.py" in out and f'File "{frames}"' in out
    assert (project / "dvc.lock").read_text() == lock_before  # nothing recorded


SIXTH_MODEL = '''"""A sixth architecture, added by tests/test_stage_deps.py: one model file.

Design: a 3-D convolution over the clip, global average pooling, softmax.
"""

from actionrec.models.registry import Architecture, register
from actionrec.models.settings import Conv3DSettings


def build(s: Conv3DSettings, num_classes: int, sequence_length: int):
    """``(N, T, S, S, 3)`` uint8 RGB -> ``(N, C)`` softmax."""
    import keras
    from keras import layers

    size = s.image_size
    frames = keras.Input((sequence_length, size, size, 3), dtype="uint8", name="frames")
    x = layers.Rescaling(1 / 255.0, name="rescale")(frames)
    x = layers.Conv3D(s.filters, 3, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling3D(name="pool")(x)
    out = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(frames, out, name="conv3d")


ARCH = register(Architecture(name="conv3d", settings=Conv3DSettings, build=build,
                             design="Conv3D 8, global average pooling, softmax"))
'''

SIXTH_SETTINGS = '''

@settings_for("conv3d")
class Conv3DSettings(ScratchSettings):
    """The sixth architecture of tests/test_stage_deps.py."""

    filters: PositiveInt = 8
'''


@pytest.mark.slow
def test_adding_an_architecture_by_the_checklist(tiny_run, tmp_path):
    """docs/models.md, "Adding an architecture", step by step on a copy of the tiny run:
    (1) the model file, (2) its settings class, (3) its params.yaml section and its tiny
    profile entry, (4) its image size in extract_frames' and extract_views' params; (5)
    without a baseline the gate lists it as new. The rest follows: the architecture list,
    its three stages, its chain, the comparison."""
    project = copy_project(tiny_run, tmp_path / "project")
    models = project / "src" / "actionrec" / "models"
    (models / "conv3d.py").write_text(SIXTH_MODEL)  # 1
    (models / "settings.py").write_text((models / "settings.py").read_text() + SIXTH_SETTINGS)  # 2
    params = yaml.safe_load((project / "params.yaml").read_text())  # 3
    section = {"image_size": 32, "backbone": None, "epochs": 2, "batch_size": 8}
    params["models"]["conv3d"] = section
    params["profiles"]["tiny"]["models"]["conv3d"] = section
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_yaml = project / "dvc.yaml"  # 4: the sizes extract_frames and extract_views store
    dvc_yaml.write_text(dvc_yaml.read_text().replace(
        "      - models.vgg16_bilstm.image_size\n",
        "      - models.vgg16_bilstm.image_size\n      - models.conv3d.image_size\n"))

    env = {"PYTHONPATH": str(project / "src")}
    archs = run_cmd([sys.executable, "-c", "from actionrec.config import ARCHITECTURES as A; "
                     "print(*A)"], cwd=project, env=env).stdout.split()
    assert archs == [*ARCHITECTURES, "conv3d"]
    stages = run_cmd(["dvc", "stage", "list", "--name-only"], cwd=project).stdout.split()
    assert {"extract_features@conv3d", "train@conv3d", "evaluate@conv3d"} <= set(stages)

    run_cmd(["dvc", "repro", "--single-item", "check_params", "extract_frames",
             "extract_features@conv3d",
             "train@conv3d", "evaluate@conv3d", "compare"], cwd=project, timeout=1200)
    metrics = json.loads((project / "reports" / "evaluate" / "conv3d" / "metrics.json")
                         .read_text())
    assert 0.0 <= metrics["top1_accuracy"] <= 1.0 and metrics["epochs_trained"] == 2
    assert "| conv3d |" in (project / "reports" / "comparison.md").read_text()
    # the gate: the five baseline architectures pass unchanged, the sixth is listed as new
    gate = run_cmd(["actionrec", "gate", "--reports", "reports/evaluate",
                    "--baseline", str(REPO / "ci" / "baseline")], cwd=project, env=env)
    rows = [line for line in gate.stdout.splitlines() if line.startswith("| conv3d")]
    assert rows and all("new" in row for row in rows), gate.stdout


def write_code_deps(dvc_yaml: Path = REPO / "dvc.yaml") -> None:
    """Rewrite the code deps (``stages/``, ``src/``) of every stage in ``dvc_yaml`` to
    :func:`expected_code_deps`; every other line stays as it is. For maintainers, after a
    change of imports: ``python -m tests.test_stage_deps --write``."""
    graph = _graph()
    lines = dvc_yaml.read_text().split("\n")
    out, i, stage = [], 0, None
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if m := re.match(r"^  (\w+):$", line):
            stage = m.group(1)
        if re.match(r"^\s+deps:$", line):
            indent = line[:len(line) - len(line.lstrip())] + "  "
            while i < len(lines) and re.match(r"^\s+- (src|stages)/", lines[i]):
                i += 1
            out += [f"{indent}- {d}" for d in expected_code_deps(graph, stage)]
    dvc_yaml.write_text("\n".join(out))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_stage_deps --write  (rewrites dvc.yaml's code deps)")
    write_code_deps()
    print("dvc.yaml: code deps rewritten from the import closures; review with git diff")
