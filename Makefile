# One set-up for every command: a project-local virtual environment, the package with its dev tools, and the verified data.
# Each target is idempotent: a second `make test` re-installs nothing and re-fetches nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup data test test-slow lab export clean-nbs readme
setup: $(STAMP)

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=23'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

data: setup
	$(BIN)/guessfirst-data fetch all

# The README's test command: every notebook (cells flagged `slow` skipped), then the tests of what lives outside notebooks.
test: setup data
	$(BIN)/nbdev_test --n_workers 2
	$(BIN)/python -m pytest -q tests

# The heavy cells (real training and attacks), flagged `#| slow` in the notebooks.
test-slow: setup data
	$(BIN)/nbdev_test --n_workers 1 --flags slow

lab: setup data
	$(BIN)/jupyter lab nbs

export: setup
	$(BIN)/nbdev_export

clean-nbs: setup
	$(BIN)/nbdev_clean

# README.md is generated from nbs/index.ipynb.
readme: setup
	$(BIN)/python tools/make_readme.py
