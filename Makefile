# signgate: one-command developer tasks. The venv is (re)built when pyproject.toml changes.
VENV ?= .venv
PYTHON ?= python3
PACKAGES := signgate workflows activities workers policies gateway cli chaos bench

.PHONY: install test demo lint clean evaluation bench chaos

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

# The whole suite: lint and types first (cheap, and a red flag for everything else).
test: lint
	$(VENV)/bin/pytest -q tests

demo: $(VENV)/.installed
	$(VENV)/bin/signgate demo

# Rebuild the evaluation dataset from packaged public-domain photos and measure the
# local detectors (copy the printed table into EVALUATION.md when it changes).
evaluation: $(VENV)/.installed
	rm -rf var/evaluation
	$(VENV)/bin/signgate attacks bona-fide --out var/evaluation/source
	$(VENV)/bin/signgate attacks generate --from var/evaluation/source --out var/evaluation/dataset
	$(VENV)/bin/signgate eval var/evaluation/dataset --plot docs/evaluation-det.png

# Issue 6 benchmarks (a few minutes): tables into BENCHMARKS.md, plot into docs/bench.png.
bench: $(VENV)/.installed
	$(VENV)/bin/python -m bench --write BENCHMARKS.md --plot docs/bench.png

# Issue 6 chaos run: 300 sessions under injected faults; tables into RELIABILITY.md.
chaos: $(VENV)/.installed
	$(VENV)/bin/python -m chaos --n 300 --concurrency 24 --write RELIABILITY.md

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(PACKAGES) tests
	$(VENV)/bin/ruff format --check $(PACKAGES) tests
	$(VENV)/bin/mypy $(PACKAGES)

# Build output and caches only: var/ holds the dev data (Temporal history, audit ledger,
# evidence) and is never removed by make.
clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis $(VENV)/.installed
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
