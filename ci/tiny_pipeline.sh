#!/usr/bin/env bash
# The tiny-data pipeline and the regression gate, exactly as CI runs them: the GitHub
# workflow (.github/workflows/ci.yml) and .ci/run both call this script, so they cannot drift.
#
#   ci/tiny_pipeline.sh                    run the tiny profile, then the regression gate
#   ci/tiny_pipeline.sh --update-baseline  run it, then rewrite ci/baseline/ from the result
#   ci/tiny_pipeline.sh --run-only         run it, no gate (the test suite and `make demo`)
#   ACTIONREC_PROFILE=sample ci/tiny_pipeline.sh --run-only
#                                          another profile of params.yaml, in .profiles/<name>/
#                                          (`make profile PROFILE=sample`; no gate: the
#                                          baseline is the tiny profile's)
#
# The run happens in a scratch copy of the working tree (uncommitted changes included):
# $ACTIONREC_CI_WORK, default .ci-work/ (git-ignored). The copy is a fresh git + DVC repo
# whose first commit holds the baseline as reports/evaluate/<arch>/metrics.json, so that
# `dvc metrics diff HEAD --md` shows what this change did to every metric. The tiny
# profile is written into the copy's params.yaml and run by `dvc repro`.
# A finished run is reused while the working tree (less ci/baseline/) and the numerics
# settings (TF_ENABLE_ONEDNN_OPTS, TF_NUM_INTRAOP_THREADS, KERAS_BACKEND) are unchanged, so
# `make test` and `make ci-pipeline` share one run; delete the folder to force a new one.
# The five architectures run $ACTIONREC_JOBS at a time (default 2; more on a machine with
# more cores: each architecture's stages are one `dvc repro --single-item`).
# It leaves: reports/, pipeline.log, logs/<arch>.log, logs/params_read.jsonl (the settings
# each stage read, and its modules), dvc_plots/ (dvc plots show),
# metrics_diff.md, gate.md.
# With $GITHUB_STEP_SUMMARY set, both tables are appended to the job summary.
# Exit status: 0 passed, 1 gate failed or pipeline error, 2 usage error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=${ACTIONREC_PROFILE:-tiny}
if [ "$profile" = tiny ]; then
  work=${ACTIONREC_CI_WORK:-$root/.ci-work}
else
  work=${ACTIONREC_CI_WORK:-$root/.profiles/$profile}
fi
jobs=${ACTIONREC_JOBS:-2}
update=0
gate=1
case "${1:-}" in
  "") ;;
  --update-baseline) update=1 ;;
  --run-only) gate=0 ;;
  -h | --help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "error: unknown argument '$1' (see ci/tiny_pipeline.sh --help)" >&2; exit 2 ;;
esac
case "$jobs" in
  '' | *[!0-9]* | 0) echo "error: ACTIONREC_JOBS='$jobs' is not a positive whole number (the" \
                          "architectures run that many at a time; 1 runs them one by one)" >&2
                     exit 2 ;;
esac
if [ "$profile" != tiny ] && [ "$gate" = 1 ]; then
  echo "error: the gate's baseline is the tiny profile's; run profile '$profile' with --run-only" >&2
  exit 2
fi
for tool in actionrec dvc git; do
  command -v "$tool" >/dev/null || {
    echo "error: '$tool' not found on PATH. Run 'make setup' and 'source .venv/bin/activate'," \
      "or call this script through 'make ci-pipeline'." >&2
    exit 2
  }
done

baseline=$(cd "$root" && python -c 'from actionrec.config import load_params; print(load_params().gate.baseline)')
case "$baseline" in /*) ;; *) baseline="$root/$baseline" ;; esac
# What the run depends on: every file that is copied (the baseline aside: it is only
# compared with) and the settings that change floating-point results. A dvc.lock of the
# user's own runs stays behind: the scratch project starts with none.
source_files() {
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do
        # `if`, not `&&`: a deleted file last in the list must not fail the loop
        if [ -e "$f" ] && [ "$f" != dvc.lock ]; then printf '%s\0' "$f"; fi
      done)
}
digest=$( { (cd "$root" && source_files | grep -zv '^ci/baseline/' | xargs -0 -r sha256sum)
            echo "TF_ENABLE_ONEDNN_OPTS=${TF_ENABLE_ONEDNN_OPTS:-}"
            echo "TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-}"
            echo "KERAS_BACKEND=${KERAS_BACKEND:-}"
            echo "profile=$profile"; } | sha256sum | cut -d' ' -f1)

# One run at a time per folder: a second caller (a parallel test worker, `make demo` beside
# `make test`) waits here, then finds the run done and reuses it.
mkdir -p "$(dirname "$work")"
exec 9>"$work.lock"
flock 9
if [ -f "$work/.run-digest" ] && [ "$(cat "$work/.run-digest")" = "$digest" ]; then
  echo "== reusing the $profile run in $work (same source and numerics settings; delete it to rerun)"
  cd "$work"
else
  echo "== scratch project: $work"
  rm -rf "$work"
  mkdir -p "$work"
  source_files | (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$work"
  cd "$work"
  export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-actionrec-ci} GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-ci@actionrec.invalid}
  export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-actionrec-ci} GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-ci@actionrec.invalid}
  unset MLFLOW_TRACKING_URI  # the scratch project keeps its own sqlite store
  git init -q
  if [ "$profile" = tiny ] && [ -d "$baseline" ]; then
    for f in "$baseline"/*/metrics.json; do
      [ -e "$f" ] || continue
      arch=$(basename "$(dirname "$f")")
      mkdir -p "reports/evaluate/$arch"
      cp "$f" "reports/evaluate/$arch/metrics.json"
    done
  fi
  git add -A
  git add -f reports 2>/dev/null || true
  git commit -qm "baseline: the working tree, with the committed baseline as reports/evaluate/<arch>/metrics.json"

  # The profile goes into the copy's params.yaml and `dvc repro` runs it. (`dvc exp run -S`
  # would do the same, but in a repository with no dvc.lock yet it first warns, once per
  # output, that there is nothing to check out.)
  echo "== $profile pipeline: actionrec profile $profile --apply && dvc repro," \
       "the five architectures $jobs at a time"
  start=$(date +%s)
  actionrec profile "$profile" --apply
  # Each stage appends the settings it reads and the actionrec modules it imports here
  # (tests/instruments/sitecustomize.py, which Python imports at start-up from PYTHONPATH);
  # tests/test_stage_deps.py checks them against dvc.yaml.
  mkdir -p logs
  export ACTIONREC_PARAMS_LOG="$PWD/logs/params_read.jsonl"
  export PYTHONPATH="$root/tests/instruments${PYTHONPATH:+:$PYTHONPATH}"
  # `dvc repro` in three steps: the data stages (the test views with them); then each architecture's chain
  # (extract_features -> train -> evaluate) as its own `dvc repro --single-item` (no
  # upstream stage: those are done, and checking them would lock their outputs), $jobs at
  # a time; then what is left (compare). DVC releases its repository lock while a stage's
  # command runs and locks each stage's outputs (dvc/stage/run.py, unlocked_repo), so
  # chains with no output in common run side by side. A chain leaves a core idle much of
  # its time (interpreter and TensorFlow start-up, model saving, MLflow, DVC hashing), so
  # two at a time on 2 cores took the tiny profile from 380 s to 261 s (10 and 12 epochs
  # aside, measured): the default is 2; ACTIONREC_JOBS=N on a machine with more cores.
  # Each chain's output goes to logs/<arch>.log, added to pipeline.log in architecture order.
  dvc repro extract_frames extract_views 2>&1 | tee pipeline.log
  # shellcheck disable=SC2329  # called by name through xargs' `bash -c`, below
  chain() {
    local arch=$1 t0 rc=0
    t0=$(date +%s)
    echo "== $arch: dvc repro --single-item {extract_features,train,evaluate}@$arch" \
         "(follow: tail -f $PWD/logs/$arch.log)"
    dvc repro --single-item "extract_features@$arch" "train@$arch" "evaluate@$arch" \
      > "logs/$arch.log" 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then
      echo "== $arch: done in $(( $(date +%s) - t0 )) s"
    else
      echo "== $arch: FAILED (exit $rc) after $(( $(date +%s) - t0 )) s; its log ends:"
      tail -n 30 "logs/$arch.log" | sed 's/^/   /'
      return 1  # not dvc's 255, on which xargs would start no further architecture
    fi
  }
  export -f chain
  read -ra archs <<< "$(python -c 'from actionrec.config import ARCHITECTURES; print(*ARCHITECTURES)')"
  # Longest chain first, so that the longest does not start last and run alone: the order
  # of the profile's `models:` in params.yaml (profiles.tiny lists them longest first);
  # an architecture the profile does not list goes last.
  read -ra longest_first <<< "$(python - "$profile" "${archs[@]}" <<'PY'
import sys
import yaml
profile, archs = sys.argv[1], sys.argv[2:]
with open("params.yaml", encoding="utf-8") as fh:
    listed = list(((yaml.safe_load(fh).get("profiles") or {}).get(profile) or {}).get("models") or {})
print(*sorted(archs, key=lambda a: listed.index(a) if a in listed else len(listed)))
PY
)"
  failed=0
  # shellcheck disable=SC2016  # $1 is for the inner bash, not this one
  printf '%s\n' "${longest_first[@]}" | xargs -P "$jobs" -I{} bash -c 'chain "$1"' _ {} \
    || failed=1
  for arch in "${archs[@]}"; do cat "logs/$arch.log"; done >> pipeline.log
  if [ "$failed" = 1 ]; then
    echo "error: an architecture's stages failed (above); logs in $work/logs/" \
      | tee -a pipeline.log >&2
    exit 1
  fi
  dvc repro 2>&1 | tee -a pipeline.log
  echo "== $profile pipeline finished in $(( $(date +%s) - start )) s" | tee -a pipeline.log

  dvc plots show -o dvc_plots >/dev/null
  [ "$profile" = tiny ] || : > metrics_diff.md  # only the tiny profile has a baseline
  [ "$profile" != tiny ] || {
    echo "### Test metrics, $profile profile: this change against the committed baseline"
    echo
    echo "\`dvc metrics diff HEAD --md\` (HEAD holds the baseline):"
    echo
    dvc metrics diff HEAD --md --precision 3 --all
  } > metrics_diff.md
  echo "$digest" > .run-digest
fi
cat metrics_diff.md
[ "$gate" = 1 ] || exit 0

if [ "$update" = 1 ]; then
  actionrec gate --reports reports/evaluate --baseline "$baseline" --update
  exit 0
fi
status=0
actionrec gate --reports reports/evaluate --baseline "$baseline" > gate.md || status=$?
cat gate.md
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { cat metrics_diff.md; echo; cat gate.md; } >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
