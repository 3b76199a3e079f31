# Every target runs the idempotent set-up first, so each works on a fresh machine.
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,$(CURDIR)/.venv/bin/python)

.PHONY: setup test quickstart
setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider --durations=15

quickstart: setup
	$(PY) tools/quickstart.py
