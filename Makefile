# The two commands of the README:
#   make demo   set up .venv on a fresh machine, prepare the embedded data, run the mini Table 1
#   make test   set up .venv if needed, then run the test-suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATASET ?= shapes
ROWS ?= all

.PHONY: setup data demo table baselines test
setup:
	@PYTHON=$(PYTHON) VENV=$(VENV) bash tools/setup_env.sh

data: setup
	$(PY) tools/prepare_data.py

demo: data
	$(PY) tools/table1.py --dataset $(DATASET) --rows $(ROWS)

baselines: data
	$(PY) tools/table1.py --dataset $(DATASET) --rows baselines

test: setup
	$(PY) -m pytest
