# asym-sweep: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATASET ?= fashion_mnist
# Extra overrides for run/sweep, e.g. make run ARGS="method=partial arch=l2-128"
ARGS ?=
# Folders, passed on only when named (make report RUNS=/scratch/runs); their defaults are
# asym_sweep/paths.py's (outputs/runs, outputs/report, outputs/timing).
RUNS  ?=
REPORT ?=
TIMING ?=

.DEFAULT_GOAL := help
.PHONY: help setup data run test lint sweep projection readings timing status report publish figure bench bench-fixed-cost bench-ensemble bench-cold-ops clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

setup: $(VENV)/.installed  ## create .venv with the pinned dependencies (CPU torch)

data: setup  ## make the dataset available (DATASET=fashion_mnist|mnist)
	$(PY) -m asym_sweep.download --dataset $(DATASET)

run: data  ## set up, get the data, and train the default run (method=topk arch=l3-256)
	$(PY) -m asym_sweep dataset=$(DATASET) $(ARGS)

test: setup  ## set up (incl. chromium for the report's browser test, when possible) and run the tests
	@sh scripts/ensure_chromium.sh
	$(PY) -m pytest -q $(ARGS)

lint: setup  ## the house style: ruff check and ruff format --check (pyproject.toml's [tool.ruff]; tests/test_style.py runs both)
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts

sweep: data  ## the thesis' Fashion-MNIST grid: 25 archs x 4 methods x 5 seeds (resumable)
	$(PY) -m asym_sweep --multirun +experiment=thesis_fashion $(ARGS)

projection: setup  ## how long `make sweep` will take here, from finished runs and measured steps (trains nothing)
	$(PY) -m asym_sweep --multirun +experiment=thesis_fashion projection=only $(ARGS)

readings: data  ## the readings panel: every reading of conf/reading on six cells x 3 seeds (resumable)
	$(PY) -m asym_sweep --multirun +experiment=readings $(ARGS)

timing: data  ## the timing sweep: every grid method's step on all 25 archs, one stretch, nothing else running (about 10 min; into TIMING)
	$(PY) -m asym_sweep.timing_sweep $(if $(TIMING),--out $(TIMING)) $(ARGS)

status: setup  ## progress of the sweeps under RUNS
	$(PY) -m asym_sweep.status $(if $(RUNS),--runs $(RUNS))

report: setup  ## the published runs (results/) and yours (RUNS) beside the thesis' values, into REPORT (index.html)
	$(PY) -m asym_sweep.report $(if $(RUNS),--runs $(RUNS)) $(if $(REPORT),--out $(REPORT)) $(ARGS)

publish: setup  ## copy the finished grid and readings runs of RUNS into results/ (records only; never replaces one)
	$(PY) scripts/publish_results.py $(if $(RUNS),--runs $(RUNS))

figure: setup  ## the report's comparison and rules figures into docs/figures/ (the README's images; installs chromium where it can)
	@sh scripts/ensure_chromium.sh
	$(PY) -m asym_sweep.report $(if $(RUNS),--runs $(RUNS)) $(if $(REPORT),--out $(REPORT)) --copy-figures docs/figures $(ARGS)

bench: setup  ## benchmark the backward rules against dense, nn.Linear and meProp's technique (the sweep's time: make projection)
	$(PY) scripts/bench_backward.py $(ARGS)

bench-fixed-cost: setup  ## the sparse backward's fixed cost per layer (width 16), fused and pure-torch paths
	$(PY) scripts/bench_fixed_cost.py $(ARGS)

bench-ensemble: setup  ## does training 5 seeds as one stacked ensemble beat 5 separate runs? (ARGS="--grid": all 25 archs)
	$(PY) scripts/bench_ensemble.py $(ARGS)

bench-cold-ops: setup  ## what small tensor ops cost right after the caches were flushed, as inside a training step
	$(PY) scripts/bench_cold_ops.py $(ARGS)

clean:  ## remove caches (never runs or reports)
	rm -rf .pytest_cache src/*.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
