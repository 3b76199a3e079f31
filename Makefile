# Every target runs the idempotent set-up first, so each works on a fresh machine.
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,$(CURDIR)/.venv/bin/python)

.PHONY: setup test test-fast quickstart wheelhouse
setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider --durations=15

# The inner loop: everything but the tests marked slow (see pytest.ini).
test-fast: setup
	$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow" --durations=15

quickstart: setup
	$(PY) tools/quickstart.py

# Everything `make setup` installs, into one folder for an offline machine (then
# PROTUNE_WHEELHOUSE=DIR make setup there). Not a set-up target: it only downloads.
#   make wheelhouse [WHEELHOUSE=wheelhouse] [WHEELHOUSE_ARGS="--python 3.11 --platform manylinux_2_28_x86_64 --with-torch"]
WHEELHOUSE ?= wheelhouse
wheelhouse:
	bash tools/wheelhouse.sh $(WHEELHOUSE) $(WHEELHOUSE_ARGS)
