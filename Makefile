# The two commands a newcomer runs: `make demo` and `make test`. Each does its own set-up,
# idempotently: a second run rebuilds nothing.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed-requirements.txt

INV := $(PY) -m invoke

.PHONY: setup venv pulumi test lint demo clean-state \
	vast-search vast-status vast-run vast-shell vast-destroy vast-pull

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
	$(INV) demo

# The targets of the bash script this project replaces, as thin aliases of the invoke tasks.
# STACK=name picks the stack (default: the selected one); ID= picks one instance of it.
stack_flag = $(if $(STACK),--stack $(STACK))
id_flag = $(if $(ID),--instance $(ID))

vast-search: venv
	$(INV) search $(stack_flag)

vast-status: venv
	$(INV) status $(stack_flag)

vast-run: venv  ## TASKS=jobs.txt, or ARGS='sine 440'
	$(INV) run $(stack_flag) $(id_flag) $(if $(TASKS),--tasks $(TASKS)) $(if $(ARGS),-- $(ARGS))

vast-shell: venv
	$(INV) shell $(stack_flag) $(id_flag)

vast-destroy: venv  ## ID= destroys one instance; without it, the whole stack
	$(INV) down $(stack_flag) $(id_flag)

vast-pull: venv  ## JOB= names the results folder work_remote/<JOB>/
	$(INV) pull $(stack_flag) $(id_flag) $(if $(JOB),--job $(JOB))

# Forget every local stack (vastsim state only; never touches a user's own backend).
clean-state:
	rm -rf .pulumi-state .pulumi-home
