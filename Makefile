# The two commands a newcomer runs: `make demo` and `make test`. Each does its own set-up,
# idempotently: a second run rebuilds nothing.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed-requirements.txt

INV := $(PY) -m invoke

.PHONY: setup system-deps venv referee pulumi test lint demo clean-state \
	vast-search vast-status vast-run vast-shell vast-destroy vast-pull alias-venv

setup: system-deps venv referee pulumi

# Every system tool, checked in seconds before anything slow; as root on Debian it installs
# what is missing (tools/system-deps.sh holds the one list).
system-deps:
	tools/system-deps.sh

# The stamp is a copy of the requirements it installed, compared by content: changed pins
# reinstall, a missing or broken .venv is made anew, anything else does nothing.
venv:
	@$(PY) -c 'import sys' 2>/dev/null || { echo "venv: making .venv"; rm -rf .venv && python3 -m venv .venv; }
	@cmp -s requirements.txt $(VENV_STAMP) || { echo "venv: installing requirements.txt"; \
	  $(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt && \
	  cp requirements.txt $(VENV_STAMP); }

# The official vastai CLI in .venv-referee, for tests/conformance only.
referee:
	tools/referee-venv.sh

pulumi:
	tools/build-pulumi.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check .

demo: setup
	$(INV) demo

# The targets of the bash script this project replaces, meaning what they meant there; each
# says which stack it used. Run them here, or from your project's directory with
# `make -f /path/to/vast-gpu/Makefile vast-run TASKS=jobs.txt` (your directory is then the
# code that is synced and where TASKS= is found). STACK= picks the (base) stack.
HERE := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
ALIAS_INV = $(HERE)/.venv/bin/python -m invoke -r $(HERE)
quote = '$(subst ','\'',$(1))'
opt = $(if $(2),$(1) $(call quote,$(2)))

vast-search: alias-venv  ## the offers a rent would choose from
	$(ALIAS_INV) search $(call opt,--stack,$(STACK))

vast-status: alias-venv  ## every instance of your account, with the stack that holds it
	$(ALIAS_INV) instances

vast-run: alias-venv  ## TASKS=jobs.txt, ARGS='[--keep --dry-run --shell ...] [-- task words]'
	$(ALIAS_INV) vast-run --args=$(call quote,$(ARGS)) $(call opt,--tasks,$(TASKS)) $(call opt,--src,$(SRC)) $(call opt,--stack,$(STACK))

vast-shell: alias-venv  ## a fresh instance and a shell on it; kept (vast-destroy ID= ends it)
	$(ALIAS_INV) vast-run --args=$(call quote,--shell $(ARGS)) $(call opt,--src,$(SRC)) $(call opt,--stack,$(STACK))

vast-destroy: alias-venv  ## ID= destroys that instance (found in whichever stack holds it)
	$(if $(ID),,$(error ID= is required: the instance id (make vast-status lists them)))
	$(ALIAS_INV) down --instance $(call quote,$(ID)) $(call opt,--stack,$(STACK))

vast-pull: alias-venv  ## ID= JOB=: /work of that instance to work_remote/JOB/work/
	$(ALIAS_INV) pull $(call opt,--instance,$(ID)) $(call opt,--job,$(JOB)) $(call opt,--stack,$(STACK))

alias-venv:
	@$(MAKE) -s --no-print-directory -C $(HERE) venv

# Forget every local stack (vastsim state only; never touches a user's own backend).
clean-state:
	rm -rf .pulumi-state .pulumi-home
