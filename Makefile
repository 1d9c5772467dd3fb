# The two set-up commands of the README:
#   make run   create .venv, install everything, start the embedded agent (voice-agent serve)
#   make test  same install plus the test-only system packages, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --constraint infra/python/constraints.txt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
INSTALLED := $(VENV)/.installed
TEST_TOOLS := $(VENV)/.test-tools

.PHONY: run test install
run: $(INSTALLED)
	$(BIN)/voice-agent serve

test: $(INSTALLED) $(TEST_TOOLS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(INSTALLED)

$(INSTALLED): pyproject.toml plugins/*/pyproject.toml infra/python/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade "pip>=24"
	$(PIP) torch==2.13.0
	$(PIP) -e plugins/livekit-plugins-parakeet -e plugins/livekit-plugins-chatterbox -e ".[test]"
	# chatterbox-tts pins torch==2.6.0, gradio, ...: its runtime dependencies come from the plugin instead.
	$(BIN)/pip install --no-deps chatterbox-tts==0.1.7
	# PyPI's torchaudio is a CUDA build tied to another torch; its pure-Python fallback is all Chatterbox needs.
	rm -f $$($(BIN)/python -c "import importlib.util,os;print(os.path.dirname(importlib.util.find_spec('torchaudio').origin))")/lib/*.so
	touch $@

$(TEST_TOOLS):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends espeak-ng sox chromium
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm
	# the browser room-mode test serves livekit-client itself (no CDN in tests)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/npm livekit-client@2.23.0
	touch $@
