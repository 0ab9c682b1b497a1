# niriss-pipe: two commands on a fresh machine with a Docker Engine:  make demo  /  make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SPEC   ?= images/default.yaml
ARGS   ?=
SYNC_ARGS ?=
BATCH_ARGS ?=
CHECK_ARGS ?=
PREVIEW_ARGS ?=

.PHONY: help demo image images base sync cache test unit unit-offline lint bench bench-sync bench-batch bench-fullframe bench-normalize clean

help:
	@echo "make demo          build the default image, run detector1 on the bundled synthetic exposure"
	@echo "make image SPEC=f  build, self-test and tag one image spec (ARGS=-v for the full log)"
	@echo "make images        build every spec in images/ that has a lock"
	@echo "make base          make the default spec's Debian base image with debootstrap"
	@echo "make sync SPEC=f   fill crds_cache/ with the spec's context and NIRISS references"
	@echo "make cache         what crds_cache/ holds, per instrument and reference type"
	@echo "make test          the whole test suite: the unit tier (no network), then integration"
	@echo "make unit          only the tests that need no engine and no network (under a minute)"
	@echo "make unit-offline  the unit tier in a network namespace with no network"
	@echo "make lint          ruff, and import-linter: layers import only downward"
	@echo "make bench         benchmarks, results in bench/results/ (ARGS for bench/run.py, SYNC_ARGS"
	@echo "                   for bench/sync.py, BATCH_ARGS for bench/batch.py, CHECK_ARGS for"
	@echo "                   bench/cachecheck.py, PREVIEW_ARGS for bench/preview.py, FULL_ARGS for"
	@echo "                   bench/fullframe.py, e.g."
	@echo "                   --image niriss-pipe:jwst_1584)"
	@echo "make bench-sync    only our sync's downloads against plain crds sync (SYNC_ARGS)"
	@echo "make bench-batch   only batch throughput: SLURM arrays per runtime against a host loop"
	@echo "                   (BATCH_ARGS)"
	@echo "make bench-fullframe  only the full-frame detector1: container vs host, 1 vs 2 cores"
	@echo "make bench-normalize  only the bit-identical rewrite, phase by phase (after make image)"
	@echo "make clean         remove the images, demo output and synthetic contexts this tool made"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) build.py demo $(ARGS)

image: $(VENV)/.installed
	$(PY) build.py build $(SPEC) $(ARGS)

images: $(VENV)/.installed
	$(PY) build.py build --all $(ARGS)

base: $(VENV)/.installed
	$(PY) build.py base $(SPEC) $(ARGS)

sync: $(VENV)/.installed
	$(PY) build.py sync $(SPEC) $(ARGS)

cache: $(VENV)/.installed
	$(PY) build.py cache $(ARGS)

# Every test: the unit tier first, with no network where a network namespace can be made (root
# or user namespaces; else as it is), then the integration tier.
test: $(VENV)/.installed
	@if unshare -n true 2>/dev/null; then \
	  echo "unit tier, in a network namespace with only loopback"; \
	  unshare -n sh -c 'ip link set lo up && $(PY) -m pytest tests/unit $(ARGS)'; \
	else $(PY) -m pytest tests/unit $(ARGS); fi
	$(PY) -m pytest tests/integration $(ARGS)

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit $(ARGS)

# The unit tier needs no network and no engine: run it where there is none (a new network
# namespace with only loopback up; needs root or user namespaces).
unit-offline: $(VENV)/.installed
	unshare -n sh -c 'ip link set lo up && $(PY) -m pytest tests/unit $(ARGS)'

lint: $(VENV)/.installed
	$(PY) -m ruff check niriss_pipe tests build.py bench setup.py
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(PY) bench/run.py $(ARGS)
	$(PY) bench/install.py
	$(PY) bench/normalize.py
	$(PY) bench/sync.py $(SYNC_ARGS)
	$(PY) bench/batch.py $(BATCH_ARGS)
	$(PY) bench/cachecheck.py $(CHECK_ARGS)
	$(PY) bench/preview.py $(PREVIEW_ARGS)
	$(PY) bench/fullframe.py $(FULL_ARGS)

bench-sync: $(VENV)/.installed
	$(PY) bench/sync.py $(SYNC_ARGS)

bench-batch: $(VENV)/.installed
	$(PY) bench/batch.py $(BATCH_ARGS)

bench-fullframe: $(VENV)/.installed
	$(PY) bench/fullframe.py $(FULL_ARGS)

bench-normalize: $(VENV)/.installed
	$(PY) bench/normalize.py

clean: $(VENV)/.installed
	$(PY) build.py clean $(ARGS)
