# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit faults bench check-config clean

# Installed from deploy/constraints.txt (the lock's versions and the test extras'), so a release upstream
# never changes what the tests run on; deploy/lock.sh refreshes both files in a commit of its own.
$(STAMP): pyproject.toml deploy/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c deploy/constraints.txt -e '.[test]'
	touch $(STAMP)

# `make run SCENARIO=rainstorm`: the simulator's storms (typhoon signals raise the response level).
# INTENSITY multiplies the sub-district's report rates (docs/simulator.md), e.g. INTENSITY=10 for a busy demo.
SCENARIO ?= normal
INTENSITY ?= 1
run: $(STAMP)
	tools/vendor-echarts.sh
	$(BIN)/soc dev --scenario $(SCENARIO) --intensity $(INTENSITY)

test: $(STAMP)
	tools/vendor-echarts.sh
	tools/ensure-promtool.sh
	tools/ensure-chromium.sh
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/stream

# `make faults RUNS=10`: the fault scenarios that many times in a row, stopping at the first red run.
RUNS ?= 1
faults: $(STAMP)
	@for run in $$(seq $(RUNS)); do echo "faults run $$run of $(RUNS)"; \
	  $(BIN)/python -m pytest -q -s -m faults tests/reliability || exit 1; done

check-config: $(STAMP)
	$(BIN)/soc check-config deploy/config

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache bench/results/*.tmp
