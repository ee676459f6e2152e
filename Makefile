# Two commands set up a fresh machine: `make run` (default leaderboard) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genrec-bench-installed

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU build of torch first, so nothing pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

.PHONY: install run test lint
install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/genrec-bench run --dataset ml-100k --split loo,temporal \
		--methods pop,sasrec-ce,sasrec-bce,lightgcn --seeds 0,1,2 --profile cpu

# pytest exits 5 when it collected no test: that fails too, with a message. One test process
# per core (pytest-xdist, idle workers steal queued tests); --durations lists the slowest tests.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal --durations=15 || { status=$$?; [ $$status -ne 5 ] || echo "pytest collected no tests" >&2; exit $$status; }

lint: $(STAMP)
	$(VENV)/bin/ruff check benchmark plugins tests
