"""Benchmark: peak memory at the full dataset's size (101 classes, 13,320 clips).

Does memory stay flat as the clip count grows? This script writes a stand-in for
UCF101 with the official file names: every clip of the official split lists
(``ucfTrainTestlist/``, 101 classes, 13,320 clips) becomes a synthetic 320x240 XVID
clip at 25 fps (class k draws action k mod 7 of src/actionrec/data/synthetic.py; a
group's look is shared by its clips, as in UCF101). It then runs the pipeline on it
with real ``dvc repro`` (``data.source: local``, ``top_n: 101``, 64 px frames, T = 20,
one LRCN epoch) from ``download`` through ``train@lrcn``, and prints per stage the wall
time and the peak resident memory of the stage's process tree (DVC, the stage, its
workers; psutil every 0.2 s) over the first quarter, the first half and all of the
stage's wall time. Those stages work clip by clip at a steady rate, so the three
figures are the peak after about 1/4, 1/2 and all of the clips: flat if nothing
accumulates per clip.

    python benchmarks/full_scale.py --keep /tmp/full_scale    # ~1 h on 2 CPU cores
    python benchmarks/full_scale.py --clips-per-group 1       # a quick check: 2,525 clips

Clips are 25-40 frames (UCF101's average is ~186): length changes decoding time, not
what is held in memory, since each clip is sampled to T frames. The
InceptionV3 tree is stored at its 75 px minimum (the other models at 64), as the
pipeline stores one tree per image size. The project's DVC cache links instead of
copying (``dvc config cache.type hardlink,symlink``), as a user with a large dataset
would set it. Results go to docs/benchmarks.md, "Rehearsal".
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rehearsal import make_project, run_stage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LISTS = REPO.parent / "shared" / "ucf101" / "ucfTrainTestlist"
STAGES = ["download", "subsample", "validate", "extract_frames", "extract_features@lrcn",
          "train@lrcn"]


def _clip_job(job: tuple) -> str:
    """Write one clip; ``job`` = (root, rel path, action, class index, group, clip,
    min_frames, max_frames). Module level: it is pickled to worker processes."""
    from actionrec.data.synthetic import dataset_clip, write_video

    root, rel, action, class_index, group, clip, lo, hi = job
    path = Path(root) / "UCF-101" / rel
    if not path.exists():  # a rerun resumes: written clips are complete (atomic rename)
        write_video(path, dataset_clip(action, 0, class_index, group, clip, lo, hi, 320, 240),
                    25.0)
    return rel


def write_dataset(lists: Path, root: Path, clips_per_group: int | None,
                  frames: tuple[int, int]) -> int:
    """UCF101 layout under ``root``: ``UCF-101/<Class>/v_..avi`` for every clip of
    split 1 (train + test = all 13,320), or the first ``clips_per_group`` clips of
    every group (every class keeps all its groups, so the validation draw works as on
    the full set), and ``ucfTrainTestlist/`` (the official lists, cut to those clips).
    Returns the clip count.

    Raises:
        SystemExit: ``lists`` has no official split lists.
    """
    from actionrec.data.splits import read_split
    from actionrec.data.synthetic import ACTIONS
    from actionrec.io import write_text
    from actionrec.parallel import imap_progress

    if not (lists / "classInd.txt").exists():
        sys.exit(f"error: no classInd.txt in {lists}; pass --lists <ucfTrainTestlist folder>")
    class_index, entries = read_split(lists, 1)
    actions = list(ACTIONS)
    kept = {e.path for e in entries if clips_per_group is None or e.clip <= clips_per_group}
    jobs = [(str(root), e.path, actions[(class_index[e.class_name] - 1) % len(actions)],
             class_index[e.class_name], e.group, e.clip, *frames)
            for e in entries if e.path in kept]
    for _ in imap_progress(_clip_job, jobs, 0, desc="full-scale clips"):
        pass
    out = root / "ucfTrainTestlist"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(lists / "classInd.txt", out / "classInd.txt")
    for split in (1, 2, 3):
        for kind in ("train", "test"):
            name = f"{kind}list0{split}.txt"
            rows = [ln for ln in (lists / name).read_text().splitlines()
                    if ln.strip() and ln.split()[0] in kept]
            write_text(out / name, "".join(f"{ln}\r\n" for ln in rows))
    return len(jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lists", type=Path, default=DEFAULT_LISTS,
                    help="the official ucfTrainTestlist folder (default: %(default)s)")
    ap.add_argument("--clips-per-group", type=int,
                    help="write only the first N clips of every group, for a quick check "
                         "(default: all)")
    ap.add_argument("--frames", type=int, nargs=2, default=(25, 40), metavar=("MIN", "MAX"),
                    help="clip length range in frames (default 25 40)")
    ap.add_argument("--stages", nargs="+", default=STAGES, help="default: %(default)s")
    ap.add_argument("--keep", type=Path,
                    help="make the videos and the project here and keep them; reruns reuse them")
    args = ap.parse_args()
    if args.clips_per_group is not None and args.clips_per_group < 1:
        ap.error("--clips-per-group must be at least 1")

    from actionrec.runtime import runtime_line

    tmp = None
    if args.keep:
        base = args.keep.resolve()
    else:
        tmp = tempfile.TemporaryDirectory()
        base = Path(tmp.name)
    videos, project = base / "videos", base / "project"
    n = write_dataset(args.lists, videos, args.clips_per_group, tuple(args.frames))

    def edit(params: dict) -> None:
        params["profile"] = "full-scale memory check (benchmarks/full_scale.py)"
        params["data"].update(source="local", top_n=101, classes=None)
        params["data"]["local"]["root"] = str(videos)
        for arch, section in params["models"].items():
            section["image_size"] = 75 if arch == "inceptionv3_gru" else 64

    if not (project / "dvc.yaml").exists():
        make_project(project, epochs=1, edit=edit)
        subprocess.run(["dvc", "config", "cache.type", "hardlink,symlink"], cwd=project,
                       check=True)
    print(runtime_line("full-scale benchmark"), flush=True)
    print(f"{n} clips in {videos}; project {project}; stage logs in {project}/logs/",
          flush=True)
    (project / "logs").mkdir(exist_ok=True)
    rows = []
    for stage in args.stages:
        with open(project / "logs" / f"{stage.replace('@', '_')}.log", "w") as log:
            wall, _, samples = run_stage(project, stage, log)
        peaks = [max((r for t, r in samples if t <= q * wall), default=0) / 2**30
                 for q in (0.25, 0.5, 1.0)]
        rows.append((stage, wall, peaks))
        print(f"  {stage}: {wall:.0f} s, peak RSS at 1/4 {peaks[0]:.2f}, 1/2 {peaks[1]:.2f}, "
              f"all {peaks[2]:.2f} GiB", flush=True)
    print()
    print("| stage | wall time | peak RSS, first 1/4 | first 1/2 | all |")
    print("|---|---:|---:|---:|---:|")
    for stage, wall, peaks in rows:
        print(f"| {stage} | {wall:.0f} s | " + " | ".join(f"{p:.2f} GiB" for p in peaks) + " |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
