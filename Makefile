# quantfleet: `make demo` and `make test` each set up .venv themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
DEMO_STAMP := $(VENV)/.installed-demo-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
BENCH_VENV := bench/.venv
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo test lint bench clean install-demo install-test browser prometheus

# numba's on-disk cache is keyed by each function's own file, but strategy kernels inline the
# accumulator and indicators of src/quantfleet/kernels: when those change, drop every cache.
NUMBA_STAMP := src/quantfleet/.numba-stamp-$(shell cat src/quantfleet/kernels/*.py | sha256sum | cut -c1-12)
$(NUMBA_STAMP):
	find src -name '*.nbi' -delete -o -name '*.nbc' -delete
	rm -f src/quantfleet/.numba-stamp-*; touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[all]"
	rm -f $(VENV)/.installed-demo-*; touch $@

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-test-* $(VENV)/.installed-demo-*; touch $@ $(DEMO_STAMP)

install-demo: $(DEMO_STAMP) $(NUMBA_STAMP)
install-test: $(TEST_STAMP)

demo: $(DEMO_STAMP) $(NUMBA_STAMP)
	$(VENV)/bin/quantfleet demo

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports

# The report's browser test loads the HTML in headless Chromium (Debian's package).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	else echo "make browser: /usr/bin/chromium is missing; install it as root with" \
	  "'apt-get update && apt-get install -y chromium' (the report's browser test is skipped without it)"; fi

# The metrics test runs a real Prometheus and Pushgateway on 127.0.0.1 (Debian's packages).
prometheus:
	@if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/prometheus-pushgateway ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y prometheus prometheus-pushgateway; \
	else echo "make prometheus: /usr/bin/prometheus or /usr/bin/prometheus-pushgateway is missing; install" \
	  "them as root with 'apt-get update && apt-get install -y prometheus prometheus-pushgateway'" \
	  "(tests/observe/test_prometheus.py is skipped without them)"; fi

test: browser prometheus $(TEST_STAMP) $(NUMBA_STAMP) lint
	$(PY) -m pytest -q

bench: $(TEST_STAMP) $(NUMBA_STAMP)
	bash bench/setup.sh
	$(BENCH_VENV)/bin/python bench/run.py
	@# next-open/close fills, stop-loss, take-profit, trailing stop against backtesting.py (~2 min; exit 1 on a residual over its tolerance)
	$(BENCH_VENV)/bin/python bench/bt_exec.py $(BENCH_FLAGS)
	@# executors, GA and replay (project venv; ~6 min; BENCH_FLAGS=--quick for a ~2 min smoke run)
	$(PY) bench/tournament_bench.py $(BENCH_FLAGS)
	@# the demo's own tournament through the CLI, serial vs processes vs Ray on 2 workers (~6 min; --quick: 1 rep)
	$(PY) bench/demo_tournament_bench.py $(BENCH_FLAGS)
	@# what one tournament item costs per strategy: the cost_ns behind executor auto's estimate (~1 min)
	$(PY) bench/tournament_cost.py $(BENCH_FLAGS)
	@# the robustness suite on the demo: confidence, stability, CPCV seconds and share of the tournament and of `quantfleet demo` (~8 min; --quick: 1 rep)
	$(PY) bench/robustness_cost.py $(BENCH_FLAGS)
	$(PY) bench/ga_bench.py $(BENCH_FLAGS)
	@# random, genetic and Optuna's tpe/cmaes/nsgaii/random: evaluations to within 1 % of the grid's best, 10 seeds (~5 min; --quick: 2 seeds)
	$(PY) bench/searcher_bench.py $(BENCH_FLAGS)
	$(PY) bench/replay_bench.py $(BENCH_FLAGS)
	@# peak RSS and wall of the whole `quantfleet sweep` process, 994 combos x 100,000 bars, PBO on (~1 min)
	$(PY) bench/sweep_memory.py
	@# the CLI path as whole processes: `quantfleet sweep` (994 combos vs 1: marginal and start-up) against vectorbt and
	@# backtesting.py, peak RSS at 100k x 994 and 1M x 10k, `quantfleet backtest`, the kernel per strategy (~6 min)
	$(PY) bench/cli_sweep.py $(BENCH_FLAGS)
	@# driver peak RSS of a tournament on shard datasets vs in memory, 50/100/200 assets x 50,000 bars (~5 min)
	$(PY) bench/shard_memory.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache build src/*.egg-info
