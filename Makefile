# Entry points of the README and docs/setup.md. Each target installs what it needs first (scripts/bootstrap.sh).
VENV ?= .venv
# test workers (pytest-xdist): two fill two cores; TEST_JOBS=0 runs the suite in one process.
# Tests go out two at a time, in the order tests/conftest.py sets (the tiny run first).
TEST_JOBS ?= 2
PYTEST_XDIST = -n $(TEST_JOBS) --maxschedchunk 2
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# MkDocs 1.x prints a notice about MkDocs 2 on every build
export NO_MKDOCS_2_WARNING := 1

.PHONY: help setup pipeline demo profile test test-unit test-slow test-backends lint ci-pipeline \
	baseline bench gpu-check gpu-wheels docs protocol mlflow-server mlflow-stop

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup:  ## install system + Python dependencies into .venv (GPU=1: CUDA builds of TF and JAX)
	@GPU=$(GPU) bash scripts/bootstrap.sh

pipeline: setup  ## the real run: `dvc repro` on UCF101 split 1, top-5 classes (downloads 6.5 GB)
	dvc repro

demo: setup  ## offline demo: the tiny profile in a scratch copy, .ci-work/ (params.yaml untouched)
	bash ci/tiny_pipeline.sh --run-only
	@work=$${ACTIONREC_CI_WORK:-.ci-work}; echo; cat "$$work/reports/comparison.md"; echo; \
	  echo "demo: the run is in $$work/ (table: $$work/reports/comparison.md); start the MLflow UI"; \
	  echo "  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri sqlite:///$$work/mlflow.db"; \
	  echo "and open the links above"

profile: setup  ## another profile in a scratch copy: make profile PROFILE=sample (.profiles/<name>/)
	@[ -n "$(PROFILE)" ] || { echo "usage: make profile PROFILE=<name> (a key of profiles: in params.yaml)"; exit 2; }
	ACTIONREC_PROFILE=$(PROFILE) bash ci/tiny_pipeline.sh --run-only
	@echo "profile $(PROFILE): the run is in .profiles/$(PROFILE)/ (reports/comparison.md, mlflow.db)"

test: setup  ## lint + the whole test suite (real dvc, real video, MLflow UI in headless Chromium)
	@bash scripts/bootstrap.sh --browser --server
	ruff check .
	lint-imports
	mkdocs build --strict
	pytest $(PYTEST_XDIST) --durations=25
	@$(MAKE) --no-print-directory test-backends

test-unit: setup  ## the unit tests (not marked slow, ~2 min): what to run while you work
	pytest $(PYTEST_XDIST) -m "not slow"

test-slow: setup  ## the integration tests (marked slow): the tiny run, DVC, team server, browser
	@bash scripts/bootstrap.sh --browser --server
	pytest $(PYTEST_XDIST) -m slow

test-backends: setup  ## the tests whose Keras code differs by backend, again under JAX (CPU)
	@echo "== the tests marked backends again under Keras' JAX backend (CPU)"
	KERAS_BACKEND=jax pytest $(PYTEST_XDIST) -m "backends and not slow"

ci-pipeline: setup  ## what CI runs after the tests: tiny pipeline in .ci-work/ + regression gate
	bash ci/tiny_pipeline.sh

protocol: setup  ## the three official splits as DVC experiments: reports/protocol.md (3x the pipeline)
	actionrec protocol

baseline: setup  ## rerun the tiny pipeline and rewrite ci/baseline/ (commit it with your change)
	bash ci/tiny_pipeline.sh --update-baseline

lint: setup  ## ruff, the import layering of pyproject.toml (import-linter), the docs site (--strict)
	ruff check .
	lint-imports
	mkdocs build --strict

docs: setup  ## serve the docs site (docs/, mkdocs.yml) at http://127.0.0.1:8000, rebuilt on each edit
	mkdocs serve --dev-addr 127.0.0.1:8000

bench: setup  ## benchmarks (figures recorded in docs/benchmarks.md; ~20 min)
	python benchmarks/extract_frames.py
	python benchmarks/train.py
	python benchmarks/input_pipeline.py
	python benchmarks/predict.py
	python benchmarks/archive_readers.py
	python benchmarks/frame_store.py --formats
	python benchmarks/frame_store.py --input

gpu-check: setup  ## the GPU check at small sizes on this CPU (~3 min; on a GPU: docs/benchmarks.md)
	python benchmarks/gpu_check.py --small --out .gpu-check

gpu-wheels: setup  ## wheels the GPU machine lacks for the GPU check, in .gpu-wheels/, proved here
	bash scripts/gpu_wheels.sh

mlflow-server: setup  ## team MLflow server: PostgreSQL store, served artifacts, 127.0.0.1:5000
	@bash scripts/bootstrap.sh --server
	actionrec mlflow-server start

mlflow-stop:  ## stop the team MLflow server (its data stays in .mlflow-server/)
	actionrec mlflow-server stop
