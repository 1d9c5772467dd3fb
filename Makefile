# The two set-up commands of the README:
#   make run   create .venv, install everything, start the embedded agent (voice-agent serve)
#   make test  same install plus the test-only system packages and the LiveKit stack, then the whole test
#              suite in a network namespace of its own (tests/run-isolated)
# and, for the LiveKit path on one machine without Docker:
#   make stack redis-server + livekit-server (built from its Go module) + one worker + the page
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --constraint infra/python/constraints.txt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
INSTALLED := $(VENV)/.installed
TEST_TOOLS := $(VENV)/.test-tools
STACK_TOOLS := $(VENV)/.stack-tools
# livekit-server from its published Go module (pure Go); pinned: tags with a `replace` cannot be installed
LIVEKIT_SERVER_VERSION := v1.13.5
LIVEKIT_SERVER := $(BIN)/livekit-server
# livekit-sip (cgo: Opus, soxr). v1.8.0 is its newest tag the Go module proxy serves (v1.9.0 and later: 403).
# The proxy also refuses the module's version list, which `go install pkg@version` reads for deprecations, so
# the tagged module is downloaded and built as the main module (its own go.mod and go.sum).
LIVEKIT_SIP_VERSION := v1.8.0
LIVEKIT_SIP := $(BIN)/livekit-sip
SIP_TOOLS := $(VENV)/.sip-tools

.PHONY: run test install stack
run: $(INSTALLED)
	$(BIN)/voice-agent serve

test: $(INSTALLED) $(TEST_TOOLS) $(STACK_TOOLS) $(LIVEKIT_SERVER) $(SIP_TOOLS) $(LIVEKIT_SIP)
	tests/run-isolated $(BIN)/python -m pytest $(PYTEST_ARGS)

stack: $(INSTALLED) $(STACK_TOOLS) $(LIVEKIT_SERVER)
	$(BIN)/voice-agent stack

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
	# postgresql: the conversation store's tests start a server of their own (tests/conversations)
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends espeak-ng sox chromium \
	  postgresql
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm
	# the browser room-mode test serves livekit-client itself (no CDN in tests)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/npm livekit-client@2.23.0
	touch $@

$(STACK_TOOLS):
	command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends redis-server; }
	touch $@

# only when missing: Go's module and build caches make a rebuild cheap, the first build takes a few minutes
$(LIVEKIT_SERVER):
	@command -v go >/dev/null || { echo "make: building livekit-server needs Go >= 1.26 (https://go.dev/dl/)"; exit 2; }
	CGO_ENABLED=0 GOBIN=$(abspath $(VENV))/go-bin go install \
	  github.com/livekit/livekit-server/cmd/server@$(LIVEKIT_SERVER_VERSION)
	mv $(VENV)/go-bin/server $@

# the phone tests: livekit-sip's cgo libraries and SIPp (Debian's sip-tester) as the SIP caller
$(SIP_TOOLS):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	  pkg-config libopus-dev libopusfile-dev libsoxr-dev sip-tester
	touch $@

$(LIVEKIT_SIP): | $(INSTALLED) $(SIP_TOOLS)
	@command -v go >/dev/null || { echo "make: building livekit-sip needs Go >= 1.26 (https://go.dev/dl/)"; exit 2; }
	cd "$$(go mod download -json github.com/livekit/sip@$(LIVEKIT_SIP_VERSION) | \
	  $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" && \
	  CGO_ENABLED=1 go build -o $(abspath $@) ./cmd/livekit-sip
