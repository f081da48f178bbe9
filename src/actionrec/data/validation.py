"""Data validation with Great Expectations (ephemeral context, nothing sent anywhere).

The ``validate`` stage decodes every video of the manifest once (:func:`probe_videos`),
joins what it learnt to the manifest, and checks the table with one expectation
suite (:func:`build_suite`):

- the expected columns, and no null in them;
- labels in ``0..n_classes-1``, class names in the class list, splits known;
- no path or video listed twice;
- every class present in every split;
- no group (``class``, ``gGG``) in two splits — clips of a group share a source video;
- every video readable (``mostly = 1 - data.max_bad_fraction``: a few bad files are
  reported and left for ``extract_frames`` to exclude, more fail the stage);
- decoded frame count, fps and frame size within ``validate.*`` bounds.

A failure writes ``reports/validation.md`` (which expectation, which rows) and the
full results as JSON, then stops the pipeline.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from actionrec.config import ValidateSettings
from actionrec.data.video import VideoDecodeError, probe
from actionrec.io import write_json, write_text
from actionrec.parallel import imap_progress

PROBE_COLUMNS = ["path", "readable", "n_frames", "fps", "width", "height", "error"]
SPLITS = ("train", "val", "test")


def _probe_one(args: tuple[str, str]) -> dict[str, Any]:
    rel, full = args
    try:
        info = probe(full)
    except VideoDecodeError as err:
        return {"path": rel, "readable": False, "n_frames": 0, "fps": 0.0, "width": 0,
                "height": 0, "error": str(err)}
    return {"path": rel, "readable": True, "n_frames": info.n_frames, "fps": info.fps,
            "width": info.width, "height": info.height, "error": ""}


def probe_videos(paths: list[str], video_root: Path, workers: int = 0,
                 progress: bool = True) -> pd.DataFrame:
    """Decode every video once; one row per path with :data:`PROBE_COLUMNS`.

    ``n_frames`` counts decoded frames; ``fps``, ``width``, ``height`` come from the
    container; an unreadable file has ``readable=False`` and the reason in ``error``.
    """
    jobs = [(p, str(video_root / p)) for p in paths]
    rows = list(imap_progress(_probe_one, jobs, workers, desc="probe videos", progress=progress))
    return (pd.DataFrame(rows, columns=PROBE_COLUMNS).sort_values("path")
            .reset_index(drop=True))


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome, in words a person reads."""

    table: str
    expectation: str
    description: str
    kwargs: dict[str, Any]
    success: bool
    unexpected_count: int
    unexpected: list[Any]


def build_suite(table: pd.DataFrame, classes: list[str], settings: ValidateSettings,
                max_bad_fraction: float) -> dict[str, list[Any]]:
    """Expectations per table: ``{"clips": [...], "groups": [...]}`` (GX Expectation objects).

    ``table`` is the manifest joined with the probe (used only to know which splits
    exist). Each expectation carries a ``description`` that the report shows.
    """
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    def when(column: str, value: Any) -> dict[str, Any]:
        return {"row_condition": Column(column) == value}

    ok = when("readable", True)
    s = settings
    clips: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(table.columns), exact_match=True,
            description="manifest + probe columns are exactly the expected ones"),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"no empty {c}")
          for c in ("path", "video", "class_name", "label", "group", "clip", "split")],
        gxe.ExpectColumnValuesToBeInSet(
            column="label", value_set=list(range(len(classes))),
            description=f"label in 0..{len(classes) - 1}"),
        gxe.ExpectColumnValuesToBeInSet(
            column="class_name", value_set=list(classes), description="class in the class list"),
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=list(SPLITS), description="split is train, val or test"),
        gxe.ExpectColumnValuesToBeUnique(column="path", description="no path listed twice"),
        gxe.ExpectColumnValuesToBeUnique(column="video", description="no video listed twice"),
        *[gxe.ExpectColumnDistinctValuesToContainSet(
            column="class_name", value_set=list(classes), **when("split", sp),
            description=f"every class has clips in {sp}")
          for sp in SPLITS if (table["split"] == sp).any()],
        gxe.ExpectColumnValuesToBeInSet(
            column="readable", value_set=[True], mostly=max(1e-9, 1.0 - max_bad_fraction),
            description=f"videos decode (at most {max_bad_fraction:.0%} may not)"),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_frames", min_value=s.min_frames, max_value=s.max_frames, **ok,
            description=f"{s.min_frames} <= decoded frames <= {s.max_frames}"),
        gxe.ExpectColumnValuesToBeBetween(
            column="fps", min_value=s.min_fps, max_value=s.max_fps, **ok,
            description=f"{s.min_fps} <= fps <= {s.max_fps}"),
        gxe.ExpectColumnValuesToBeBetween(
            column="width", min_value=s.min_width, **ok, description=f"width >= {s.min_width} px"),
        gxe.ExpectColumnValuesToBeBetween(
            column="height", min_value=s.min_height, **ok,
            description=f"height >= {s.min_height} px"),
    ]
    groups = [gxe.ExpectColumnValuesToBeBetween(
        column="n_splits", min_value=1, max_value=1,
        description="no group (class, gGG) has clips in two splits")]
    return {"clips": clips, "groups": groups}


def group_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (class, group): in how many splits and which ones its clips are."""
    g = table.groupby(["class_name", "group"])["split"]
    out = pd.DataFrame({"n_splits": g.nunique(),
                        "splits": g.agg(lambda s: ",".join(sorted(set(s))))})
    out = out.reset_index()
    out["key"] = out["class_name"] + "/g" + out["group"].astype(int).map("{:02d}".format)
    return out


def _plain(obj: Any) -> Any:
    """GX result objects -> JSON-safe builtins (anything unknown becomes its ``str``)."""
    return json.loads(json.dumps(obj, default=str))


def run_suite(tables: dict[str, pd.DataFrame], suites: dict[str, list[Any]],
              index_column: dict[str, str]) -> list[CheckResult]:
    """Validate each table with its expectations in an ephemeral GX context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("actionrec")
    results: list[CheckResult] = []
    for name, frame in tables.items():
        asset = source.add_dataframe_asset(name=name)
        batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"actionrec_{name}"))
        for exp in suites[name]:
            suite.add_expectation(exp)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate_{name}", data=batch_def, suite=suite))
        outcome = validation.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE",
                           "unexpected_index_column_names": [index_column[name]]},
        )
        for r in outcome.results:
            cfg = r.expectation_config
            res = r.result or {}
            unexpected = res.get("unexpected_index_list") or res.get("unexpected_list") or []
            if not unexpected and "details" in res:  # set expectations report the missing values
                unexpected = [res["details"]]
            kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
            results.append(CheckResult(
                table=name, expectation=cfg.type, description=cfg.description or "",
                kwargs=_plain(kwargs),
                success=bool(r.success),
                unexpected_count=int(res.get("unexpected_count") or (0 if r.success else 1)),
                unexpected=[_plain(u) for u in unexpected[:20]],
            ))
    return results


def render_report(results: list[CheckResult], n_clips: int, bad: pd.DataFrame) -> str:
    """Markdown report: a table of every expectation, then the failing rows."""
    failed = [r for r in results if not r.success]
    lines = [
        "# Data validation report",
        "",
        f"**{'FAILED' if failed else 'PASSED'}**: {len(results) - len(failed)} of {len(results)} "
        f"expectations met over {n_clips} clips.",
        "",
        "| table | check | expectation | column | result | unexpected rows |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.table} | {r.description} | `{r.expectation}` | "
                     f"{r.kwargs.get('column', '')} | {'ok' if r.success else '**FAIL**'} | "
                     f"{r.unexpected_count} |")
    for r in failed:
        lines += ["", f"## FAIL: {r.description}", "", f"`{r.expectation}` on table "
                  f"`{r.table}`, arguments `{r.kwargs}`",
                  "", "Rows (first 20):", ""]
        lines += [f"- `{u}`" for u in r.unexpected] or ["- (no row detail)"]
    if len(bad):
        lines += ["", "## Unreadable videos", "", "| path | error |", "|---|---|"]
        lines += [f"| {p} | {e} |" for p, e in zip(bad["path"], bad["error"], strict=True)]
    return "\n".join(lines) + "\n"


def validate_dataset(manifest: pd.DataFrame, classes: list[str], video_root: Path,
                     settings: ValidateSettings, max_bad_fraction: float, report_dir: Path,
                     probe_out: Path, progress: bool = True) -> tuple[bool, Path]:
    """Probe, validate, write ``probe_out`` (CSV) and the reports; return ``(passed, md_path)``."""
    from actionrec.io import write_csv

    probed = probe_videos(list(manifest["path"]), video_root, settings.workers, progress)
    table = manifest.merge(probed, on="path", how="left", validate="one_to_one")
    groups = group_table(table)
    suites = build_suite(table, classes, settings, max_bad_fraction)
    results = run_suite({"clips": table, "groups": groups}, suites,
                        {"clips": "path", "groups": "key"})
    bad = probed[~probed["readable"]]
    md = render_report(results, len(table), bad)
    report_dir.mkdir(parents=True, exist_ok=True)
    write_text(report_dir / "validation.md", md)
    write_json(report_dir / "validation.json", {
        "success": all(r.success for r in results),
        "n_clips": len(table),
        "n_unreadable": len(bad),
        "results": [r.__dict__ for r in results],
    })
    write_csv(probe_out, probed)
    return all(r.success for r in results), report_dir / "validation.md"
