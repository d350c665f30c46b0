# vcnn: `make demo` and `make test` set everything up on a fresh Debian 12 / Ubuntu machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REFERENCE := ../shared/reference
DEMO_OUT ?= out/demo
DEMO_STUDY := cases/hills_transport_demo.toml
DEMO_RUN ?= runs/hills_transport_demo
BENCH_OUT ?= bench-results
MPIRUN_ROOT := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml .ci/setup
	bash .ci/setup
	touch $(STAMP)

demo: setup
	$(VENV)/bin/vcnn solve hills-transport --alpha 1 --resolution 90x50 --out $(DEMO_OUT) --overwrite \
	  $(if $(wildcard $(REFERENCE)/hills_transport/openfoam_alpha1.npz),--reference $(REFERENCE)/hills_transport/openfoam_alpha1.npz)
	@echo "demo solve written to $(DEMO_OUT): fields.vtu, meta.json, velocity_magnitude.png, concentration.png"
	rm -rf $(DEMO_RUN)
	$(VENV)/bin/vcnn run $(DEMO_STUDY) --out $(DEMO_RUN)
	@echo "demo study in $(DEMO_RUN): report.md, learning curves, per-network checkpoints, evaluations, invariance"

# Two workers, each test file on one of them (its module fixtures are built once): the suite is
# mostly single-threaded solves, so it takes about half the time on 2 cores. Files are handed out
# in collection order (tests/conftest.py puts those with a slow test first), not by test count,
# which left the 4.5-minute one-test file for last. One OpenMP thread per worker (and per process
# it starts): two workers with a pool of two threads each oversubscribe the 2 cores (16 min 6 s;
# 12 min 34 s with one thread each).
test: setup
	OMP_NUM_THREADS=1 $(MPIRUN_ROOT) $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

bench: setup
	$(MPIRUN_ROOT) $(PY) -m benchmarks --out $(BENCH_OUT)

clean:
	rm -rf out runs data $(BENCH_OUT) .pytest_cache
