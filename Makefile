# Two entry points: `make run` (the embedded stack) and `make test` (install everything, run the suite).
# Every install step checks first, so a second run costs seconds.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := slapd ldap-utils golang-go golang-github-vmware-govmomi-dev bind9 bind9-dnsutils \
    chromium chromium-driver 389-ds-base systemd \
    qemu-system-x86 ipxe-qemu pxelinux syslinux-common dnsmasq-base curl
VCSIM := contrib/vcsim/vcsim
RUN_DIR ?= run
WHEEL_VENV := .wheel-venv

.PHONY: all deps apt venv vcsim test lint wheel-check bench run clean

all: test

deps: apt venv vcsim

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	# The editable install puts the checkout on sys.path (setup.cfg: package_dir = .), where
	# Twisted finds twisted/plugins; drop the link that older versions of this file made.
	find "$$($(BIN)/python -c 'import twisted.plugins, os; print(os.path.dirname(twisted.plugins.__file__))')" \
	    -maxdepth 1 -type l -name statelessd_plugin.py -delete
	touch $@

vcsim: $(VCSIM)

$(VCSIM): $(wildcard contrib/vcsim/*.go)
	@if ls contrib/vcsim/*.go >/dev/null 2>&1; then \
	    cd contrib/vcsim && GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= \
	        GOCACHE="$${GOCACHE:-$(CURDIR)/.gocache}" go build -o vcsim . ; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# The wheel in a venv of its own, used from outside the checkout (see tools/wheel-check).
wheel-check: venv
	tools/wheel-check $(BIN)/python $(WHEEL_VENV)

test: deps lint wheel-check
	$(BIN)/pytest -q -p no:cacheprovider

bench: deps
	$(BIN)/python tests/bench/resolve.py
	$(BIN)/python tests/bench/apply.py
	$(BIN)/python tests/bench/boot_storm.py 200
	$(BIN)/python tests/bench/drift.py 200
	$(BIN)/python tests/bench/boot_configs.py 1000
	$(BIN)/python tests/bench/secret_store.py 2000

run: deps
	$(BIN)/python tools/demo.py --data $(RUN_DIR)

clean:
	rm -rf $(VENV) $(WHEEL_VENV) $(VCSIM) $(RUN_DIR) build *.egg-info
