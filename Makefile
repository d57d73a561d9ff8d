# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lock setup demo test lint typecheck unit unit-timed unit-untimed lodestar prove bench e2e e2e-middleware e2e-direct e2e-faults mutants fuzz soak clean

# Dependencies come from requirements/test.lock: exact versions, each file checked against its sha256
# (`make lock` refreshes it); the project itself is then installed without resolving anything more.
$(STAMP): pyproject.toml requirements/test.lock
	@if [ ! -x $(BIN)/python ] || ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	    py=$$(scripts/find-python) || exit 1; \
	    echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/test.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

lock:
	scripts/lock

setup: $(STAMP)

demo: setup
	$(BIN)/covalidator demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check model sim runtime proofs mutation tests bench e2e scripts

# mypy sees the package as installed (covalidator.model, .sim, .runtime, .proofs) through a tree of links,
# so imports between the folders are checked, not taken as Any
typecheck: setup
	@rm -rf .typecheck && mkdir -p .typecheck/covalidator && ln -s ../../covalidator/__init__.py .typecheck/covalidator/
	@for p in model sim runtime proofs; do ln -s ../../$$p .typecheck/covalidator/$$p; done
	MYPYPATH=.typecheck $(BIN)/mypy --strict -p covalidator.model -p covalidator.sim -p covalidator.runtime -p covalidator.proofs

prove: setup
	$(BIN)/covalidator prove

unit: setup
	$(BIN)/python -m pytest -q --durations=15

# the unit tests in two parts: those that read the wall clock (live nodes, real processes, timeouts) and
# those that do not (model, proofs, seeded simulations; tests/conftest.py UNTIMED)
unit-timed: setup
	$(BIN)/python -m pytest -q -m "not untimed" --durations=15

unit-untimed: setup
	$(BIN)/python -m pytest -q -m untimed --durations=15

# everything, in two lanes at once (scripts/two-lanes): the timed tests and the e2e runs at normal priority;
# at the lowest CPU priority beside them, Lodestar's install for the e2e runs, the proofs, the untimed tests
test: lint typecheck
	scripts/two-lanes "lodestar prove unit-untimed" "unit-timed e2e e2e-middleware"

# Lodestar for the e2e runs, ahead of them (e2e/lodestar/install.sh: cached, one install at a time). Its
# failure is not this target's: the e2e runs install again and say what is missing (node, npm)
lodestar:
	-e2e/lodestar/install.sh >/dev/null

# Signer mode: a Lodestar BN as published + 4 keyless Lodestar VCs, each with its covalidator node as
# beacon node and external signer, until finality (~6 min; README "End to end with real clients");
# the last line is the judgement as JSON. Needs node >= 20 and npm.
e2e: setup
	$(BIN)/python e2e/lodestar/run.py --mode signer

# Middleware mode: the VCs hold share keystores; the BN is the patched copy (e2e/lodestar/patch_bn.py).
# At epoch 1 operators 0-2 run `lodestar validator voluntary-exit` for validator 0 through their nodes
# (share keystores: Lodestar 1.5.1's exit command signs with local keys only); the BN must show it exiting
e2e-middleware: setup
	$(BIN)/python e2e/lodestar/run.py --mode middleware --exit 1

# The comparison: the same VCs with the full keys straight to the BN (no covalidator; not in CI)
e2e-direct: setup
	$(BIN)/python e2e/lodestar/run.py --mode direct

# signer mode with node 1 SIGKILLed mid-epoch and restarted a slot later
e2e-faults: setup
	$(BIN)/python e2e/lodestar/run.py --mode signer --faults

# Mutation testing of the safety-critical modules (cosmic-ray; hours; not in CI): README "Mutation testing"
mutants: setup
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[mutation]'
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python mutation/mutants.py

# The VC API fuzzed from the beacon-APIs spec, longer than CI's bounded run (README "Reliability and security")
# The hostile-input runs of CI, longer: generated requests (300 per endpoint and mode), a 30 s flood of
# 1,000 requests/s, a Byzantine operator's generated traffic for 5 minutes
fuzz: setup
	FUZZ_EXAMPLES=300 $(BIN)/python -m pytest -q -s tests/test_fuzz_vc_api.py
	FLOOD_SECONDS=30 $(BIN)/python -m pytest -q -s tests/test_vc_flood.py
	BYZANTINE_SECONDS=300 $(BIN)/python -m pytest -q -s tests/test_byzantine_peer.py

# Seeded cluster simulations (N = 4, 7, 10; Byzantine, crash, partitions) until 100,000 duties (hours)
soak: setup
	$(BIN)/python scripts/soak.py --out soak.json

bench: setup
	$(BIN)/python bench/slashing.py
	$(BIN)/python bench/bls.py
	$(BIN)/python bench/qbft.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .typecheck
