# lsnb: `make book` builds the executable book (each notebook executed once),
# `make book-warm` builds it and then times a second, warm-cache execution,
# `make book-check` opens the built site in headless Chromium, `make test` runs the tests.
# Each target creates the virtual environment (.venv) first when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lsnb-installed
PROFILE ?= quick

export LSNB_CACHE ?= $(CURDIR)/.cache
export TF_CPP_MIN_LOG_LEVEL = 3
export TF_ENABLE_ONEDNN_OPTS = 1
export PYTHONUNBUFFERED = 1

.PHONY: env book book-warm book-check test bench clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[book,test,lucid,torch]"
	$(BIN)/python -m pip install -q --no-deps lucid==0.3.10
	$(BIN)/python -m ipykernel install --sys-prefix --name lsnb --display-name "Python (lsnb)" >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/python scripts/build_book.py --profile $(PROFILE)

book-warm: $(STAMP)
	$(BIN)/python scripts/build_book.py --profile $(PROFILE) --warm-rerun

# the built site (make book first) in headless Chromium, network blocked
book-check: $(STAMP)
	LSNB_BUILT_SITE=$(CURDIR)/_build/html $(BIN)/python -m pytest -q tests/test_browser.py -k built_book

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf _build book/_executed .pytest_cache
