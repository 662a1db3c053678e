# The two commands a newcomer runs: `make demo` and `make test`. Each does its own set-up,
# idempotently: a second run rebuilds nothing.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed-requirements.txt

.PHONY: setup venv pulumi test lint demo clean-state

setup: venv pulumi

venv: $(VENV_STAMP)

# The stamp is a copy of the requirements it installed: changed pins reinstall, nothing else does.
$(VENV_STAMP): requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	cp requirements.txt $(VENV_STAMP)

pulumi:
	tools/build-pulumi.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check .

demo: setup
	@echo "make demo: the end-to-end demo lands with the tasks (issue 5); the toolchain is ready:"
	@eval "$$($(PY) tools/pulumi_env.py --stack local)" && pulumi version

# Forget every local stack (vastsim state only; never touches a user's own backend).
clean-state:
	rm -rf .pulumi-state .pulumi-home
