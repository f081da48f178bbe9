"""Data lineage: what a run read, as MLflow datasets with DVC's hashes as digests."""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path, PurePosixPath

import pandas as pd
import yaml

#: Reads of a dvc.lock that is being rewritten (see :func:`dvc_hash`), and the pause between.
LOCK_READS, LOCK_READ_PAUSE_S = 5, 0.1


def _lock_entries(lock: Path) -> tuple[list[dict], bool]:
    """Every ``outs`` and ``deps`` entry of ``lock``, and whether the file read whole
    (parsed, and no entry cut short)."""
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return [], False
    entries, whole = [], isinstance(stages, dict)
    for stage in (stages.values() if whole else []):
        if not isinstance(stage, dict):
            whole = False
            continue
        for entry in [*(stage.get("outs") or []), *(stage.get("deps") or [])]:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                entries.append(entry)
            else:
                whole = False
    return entries, whole


def dvc_hash(path: Path, root: Path = Path(".")) -> str | None:
    """DVC's hash of ``path`` (or of the DVC output that holds it) as ``root/dvc.lock`` has it.

    Every stage's ``outs`` and ``deps`` are searched; a folder's hash is DVC's ``<md5>.dir``
    (36 characters, MLflow's limit for a dataset digest). Returns ``None`` when the path is
    in no stage of ``dvc.lock`` (or there is none: a stage run by hand).

    DVC rewrites ``dvc.lock`` in place, so a stage of a parallel ``dvc repro`` can read it
    half-written (seen: an entry ``path:`` with no value, which failed a training of the
    tiny run). A lock that does not parse, or has an entry cut short, is read again, up to
    :data:`LOCK_READS` times :data:`LOCK_READ_PAUSE_S` apart; after that its complete
    entries are used, as if the rest were not in the lock.
    """
    lock = root / "dvc.lock"
    if not lock.is_file():
        return None
    rel = PurePosixPath(Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix())
    for attempt in range(LOCK_READS):
        entries, whole = _lock_entries(lock)
        if whole:
            break
        if attempt < LOCK_READS - 1:
            time.sleep(LOCK_READ_PAUSE_S)
    found: dict[PurePosixPath, str] = {}
    for entry in entries:
        out = PurePosixPath(entry["path"])
        if entry.get("md5") and (rel == out or out in rel.parents):
            found[out] = entry["md5"]
    return found[max(found, key=lambda p: len(p.parts))] if found else None


def log_data_inputs(manifest: Path, splits: list[str], store: Path | None = None,
                    store_context: str = "train", root: Path = Path(".")) -> None:
    """Log the run's data as MLflow datasets (``mlflow.log_input``) into the active run.

    Args:
        manifest: ``data/manifest.csv``; for each of ``splits`` its rows are logged as the
            dataset ``manifest:<split>`` with ``context=<split>`` (the Dataset column of the
            MLflow runs table), digest = DVC's hash of the manifest (its MD5 without DVC).
        store: the frame or feature store the model read (``data/frames/<size>``,
            ``data/features/<arch>``), logged as metadata (``mlflow.data.meta_dataset``),
            named by its path, digest = DVC's hash of the output that holds it.
        root: the folder of ``dvc.lock`` (the repository root).
    """
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    rows = pd.read_csv(manifest)
    digest = dvc_hash(manifest, root)
    if digest is None:  # no dvc.lock entry: the file's MD5, which is what DVC 3 records
        with open(manifest, "rb") as fh:
            digest = hashlib.file_digest(fh, "md5").hexdigest()
    source = str(Path(manifest).resolve())
    with warnings.catch_warnings():
        # MLflow's hints that don't apply here: a local path matches both of its local
        # source classes (same type), and integer columns are fine in a dataset record.
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer")
        for split in splits:
            part = rows[rows["split"] == split].reset_index(drop=True)
            dataset = mlflow.data.from_pandas(part, source=source, targets="label",
                                              name=f"manifest:{split}", digest=digest)
            mlflow.log_input(dataset, context=split, tags={"clips": str(len(part))})
        if store is not None:
            name = Path(os.path.relpath(Path(store).resolve(), root.resolve())).as_posix()
            dataset = MetaDataset(resolve_dataset_source(str(Path(store).resolve())),
                                  name=name, digest=dvc_hash(store, root))
            mlflow.log_input(dataset, context=store_context)
