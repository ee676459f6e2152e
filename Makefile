# Two commands set up a fresh machine: `make run` (default leaderboard) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genrec-bench-installed

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU build of torch first, so nothing pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,cornac]"
	touch $(STAMP)

.PHONY: install run test lint board
install: $(STAMP)

# The baselines on two splits with 3 seeds, then one method of each generative family
# (seq2seq, SETRec, RPG, LLM) on `loo` with seed 0; a fresh clone imports every row from the
# results archive and only renders; the last step copies the loo headline into README.md.
run: $(STAMP)
	$(VENV)/bin/genrec-bench run --dataset ml-100k --split loo,temporal \
		--methods pop,sasrec-ce,sasrec-bce,lightgcn --seeds 0,1,2 --profile cpu
	$(VENV)/bin/genrec-bench run --dataset ml-100k --split loo \
		--methods tiger,tiger-decoder,setrec,rpg,bigrec --seeds 0 --profile cpu
	$(VENV)/bin/genrec-bench leaderboard --dataset ml-100k --split loo --readme README.md

# The committed cpu boards, in the order their budget is spent: seed methods and baselines
# with 3 seeds, the other methods with 1, loo before cold-items. Two workers (one per core)
# share the store's run claims, so each run is fitted once; a killed `make board` resumes.
# The second worker starts 30 s later, once the first has imported the results archive.
SEEDED := pop,sasrec-ce,sasrec-bce,lightgcn,tiger,letter-tiger,p5-cid,setrec,lcrec,letter-lcrec,lamia,rpg,tiger-decoder,rqkmeans-decoder,tiger-rqkmeans,cornac:TIGER,cornac:RPG
SINGLE := p5-tid,p5-semid,bigrec,setrec-decoder,setrec-no-sem,setrec-no-cf,setrec-no-query,setrec-no-sparse
BOARD := $(VENV)/bin/genrec-bench run --dataset ml-100k --profile cpu --no-progress
# inflight/ (when present) holds the checkpoints of board fits still running when the last
# board session stopped (`genrec-bench checkpoints --export inflight`): imported first, they resume.
board: $(STAMP)
	test ! -d inflight || $(VENV)/bin/genrec-bench checkpoints --import inflight
	for worker in 1 2; do \
		( sleep $$(( 30 * (worker - 1) )); for split in loo cold-items; do \
			OMP_NUM_THREADS=1 $(BOARD) --split $$split --methods $(SEEDED) --seeds 0,1,2; \
			OMP_NUM_THREADS=1 $(BOARD) --split $$split --methods $(SINGLE) --seeds 0; \
		done ) & \
	done; wait

# pytest exits 5 when it collected no test: that fails too, with a message. One test process
# per core (pytest-xdist, idle workers steal queued tests); --durations lists the slowest tests.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal --durations=15 || { status=$$?; [ $$status -ne 5 ] || echo "pytest collected no tests" >&2; exit $$status; }

lint: $(STAMP)
	$(VENV)/bin/ruff check benchmark plugins tests
