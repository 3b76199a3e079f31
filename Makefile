# Every target runs the idempotent set-up first, so each works on a fresh machine.
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,$(CURDIR)/.venv/bin/python)

.PHONY: setup test test-fast quickstart
setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider --durations=15

# The inner loop: everything but the tests marked slow (see pytest.ini).
test-fast: setup
	$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow" --durations=15

quickstart: setup
	$(PY) tools/quickstart.py
