# One set-up for every command: a project-local virtual environment, the package with its dev tools, and the verified data.
# Each target is idempotent: a second `make test` re-installs nothing and re-fetches nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup data test test-slow reproduce reproduce-paper-lite lab export clean-nbs readme mutants weights book
setup: $(STAMP)

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=23'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

data: setup
	$(BIN)/guessfirst-data fetch all

# The README's test command: every notebook (cells flagged `slow` skipped), then the tests of what lives outside notebooks.
# Two notebooks at a time, one BLAS thread each: more threads than cores makes small tensor ops many times slower.
test: setup data
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m 'not slow' tests

# The README's main command: train every model on both datasets (quick profile), attack them, write tables and figures.
reproduce: setup data
	$(BIN)/guessfirst-reproduce --profile quick --dataset all

# The committed reproduction (about an hour and a half on 2 cores); results/paper-lite/ holds its output.
reproduce-paper-lite: setup data
	$(BIN)/guessfirst-reproduce --profile paper-lite --dataset all

# The heavy cells (real training and attacks), flagged `#| slow` in the notebooks, and the slow tests of the machinery
# (kill and resume, processes sharing a study, a wheel in a clean environment), marked `slow` in tests/.
test-slow: setup data
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --flags slow
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m slow tests

# Mutation testing (issue 13): plant each plausible bug listed in tools/mutants.py in turn, run the notebooks that should
# catch it, restore the notebook. Needs nbs/ and guessfirst_nb/ clean in git. Fails if a mutant survives or the list is stale.
# Options through MUTANTS_ARGS, e.g. make mutants MUTANTS_ARGS='--only ie-sigma2-2 theta-r-plus-fc3' (or '--list').
mutants: setup data
	$(BIN)/python tools/mutants.py $(MUTANTS_ARGS)

# Publish the weights (notebook 12): copy the final checkpoints of the published runs from RUNS into weights/ and write
# their SHA-256 sums into guessfirst_nb/pretrained.json. A checkpoint that differs from its published file is refused
# (results were measured on the published one); OVERWRITE=1 replaces it on purpose.
RUNS ?= $(HOME)/.cache/guessfirst/runs
weights: setup
	$(BIN)/python -c "from guessfirst_nb.pretrained import publish; publish('$(RUNS)', overwrite=$(if $(filter 1 yes true True,$(OVERWRITE)),True,False))"

lab: setup data
	$(BIN)/jupyter lab nbs

export: setup
	$(BIN)/nbdev_export

clean-nbs: setup
	$(BIN)/nbdev_clean

# README.md is generated from nbs/index.ipynb.
readme: setup
	$(BIN)/python tools/make_readme.py

# The notebooks with their outputs as a static HTML book in _book/ (open _book/index.html; no Jupyter, no network).
book: setup
	$(BIN)/python tools/make_book.py --out _book
