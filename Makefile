# Entry points of the README. Each target installs what it needs first (scripts/bootstrap.sh).
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup pipeline demo test lint bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

setup:  ## install system + Python dependencies into .venv
	@bash scripts/bootstrap.sh

pipeline: setup  ## the real run: `dvc repro` on UCF101 split 1, top-5 classes (downloads 6.5 GB)
	dvc repro

demo: setup  ## offline demo: the whole pipeline on the tiny synthetic profile
	dvc exp run $$(actionrec profile tiny)

test: setup  ## lint + the test suite (real dvc, real video; skips ../shared tests when absent)
	ruff check .
	pytest

lint: setup  ## ruff only
	ruff check .

bench: setup  ## benchmarks (figures recorded in docs/benchmarks.md)
	python benchmarks/extract_frames.py
