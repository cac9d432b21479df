# One entry point per workflow; .ci/run calls `make test` and `make lint`.
# Every target sets up what it needs: a virtual environment in .venv, the
# Python dependencies (pip's cache is kept) and a release build of the
# extension.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help run test test-rust test-py lint fmt dev bench clean wheel

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip "maturin>=1.9.4,<2"

dev: $(PY)  ## build the extension (release) and install csipose with every extra into .venv
	maturin develop --release --extras train,data,test,export,quantize

run: dev  ## the main job: csipose train with its built-in default (simulate, train, evaluate)
	csipose train

test: dev test-rust test-py  ## run every test: cargo test + pytest

test-rust:
	cargo test -p csipose-core

test-py: dev
	$(PY) -m pytest

lint: dev  ## cargo fmt, clippy, ruff, the _native.pyi check, mypy and the import layers
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(PY) -m mypy.stubtest csipose._native
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# An abi3 wheel (CPython >= 3.11) with CountNet (candle) built in, into dist/. The release
# profile is the one `make dev` builds, so cargo reuses its output. The manylinux tag is
# the oldest this build can honestly claim: built on Debian 12 (glibc 2.36), the
# extension uses libc/libm symbols up to GLIBC_2.35, so manylinux_2_28 is refused by
# maturin's auditwheel check and manylinux_2_35 passes it. For older glibc, build in a
# manylinux_2_28 container. tests/test_wheel.py installs the wheel into a fresh venv
# without cargo on PATH.
WHEEL_TAG ?= manylinux_2_35
wheel: $(PY)  ## build the abi3 manylinux wheel into dist/
	maturin build --release --compatibility $(WHEEL_TAG) --out dist

fmt: dev  ## format Rust and Python sources
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches

bench: dev  ## run every benchmark in benches/ (long; not part of the tests)
	for b in benches/bench_*.py; do $(PY) $$b || exit 1; done

clean:  ## remove build outputs and the virtual environment
	rm -rf target $(VENV) python/csipose/*.so
