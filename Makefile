# sangja build/test scaffolding (GNU make).
#
#   make install   Debian packages (only if missing) + .venv with sangja and test deps
#   make test      the test suite (unit + integration; integration needs root)
#   make demo      scripts/demo.sh: host view vs container view, then the lifecycle
#   make bench     bench/runtime_start: container start-up time, sangja vs runc
#   make bench-build  bench/build: build and commit speed, sangja vs podman vs docker
#   make lint      ruff and mypy (the test extras install both; tests run them too)
#   make install-systemd  contrib/systemd's sangja.socket/.service into SYSTEMD_DIR
#                  (not enabled: `systemctl enable --now sangja.socket` does that)
#   make man       man pages of sangja and sangja-runtime into docs/man/ (from the flag tables)
#   make clean     remove .venv, build/ and caches

# Debian's interpreter on purpose: it starts in ~9 ms (pyenv's ~31 ms), and
# sangja-runtime start-up time is a product feature. Override with PYTHON=...
# (after `make clean`: an existing .venv is kept as it is).
PYTHON ?= /usr/bin/python3
VENV   := .venv
STAMP  := $(VENV)/.sangja-installed
MONITOR := $(VENV)/libexec/sangja/sangja-monitor
EXEC_HELPER := $(VENV)/libexec/sangja/sangja-exec
BENCH_ARGS ?=
PYTEST_ARGS ?=

# Everything the project and its tests need at run time. runc is the
# interop/benchmark peer, busybox-static the root filesystem of tests and demo,
# netavark, aardvark-dns and iptables are the engine's network backend (bridge
# networks, published ports, names between containers: docs/engine.md),
# podman, conmon and containernetworking-plugins (podman's default network) the
# engine of tests/integration/test_podman.py, containerd (with ctr and its runc
# shim) that of tests/integration/test_containerd.py, gcc and libc6-dev build the
# static attacker of tests/integration/test_escapes.py, zstd decompresses zstd
# image layers, isal's igzip gzip ones (3.5x zlib's speed, on another core), docker-registry
# (Distribution), apache2-utils (htpasswd) and openssl the registry of
# tests/integration/test_registry.py and bench/pull; zsh and fish check the completion
# scripts of tests/unit/test_cli_help.py, groff the man pages.
DEB_PACKAGES := python3 python3-venv busybox-static runc procps iproute2 \
                util-linux libseccomp2 uidmap git podman conmon gcc libc6-dev zstd \
                musl-tools tini golang-github-containers-common skopeo umoci \
                debootstrap mmdebstrap crun docker.io containernetworking-plugins \
                containerd strace docker-registry apache2-utils openssl isal \
                netavark aardvark-dns iptables docker-compose python3-docker \
                zsh fish groff-base

.DEFAULT_GOAL := help
.PHONY: help install deb-packages test demo bench bench-build bench-api lint man clean \
        install-systemd

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

install: deb-packages $(STAMP) $(MONITOR) $(EXEC_HELPER)
	@# Byte-compile ahead: start-up time is a feature, and environments that set
	@# PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every run.
	@$(VENV)/bin/python -m compileall -q src
	@# pip's console-script wrappers import `re` (about 2 ms): write lean ones instead.
	@# sangja-runtime and sangja have no dependencies outside the standard library, so
	@# they also skip `site` (-S, about 3-7 ms with setuptools' .pth hooks) and find the
	@# package themselves.
	@# They end with os._exit once stdout and stderr are flushed: the interpreter's teardown
	@# (freeing every module) costs about 5 ms, and every file or database a command opens
	@# is closed by the command itself.
	@for cmd in sangja-runtime:runtime sangja:engine; do \
	  printf '#!%s -S\nimport sys\nsys.path.insert(0, "%s")\nfrom sangja.cli.%s import main\nfrom sangja.cli import leave\nleave(main())\n' \
	    "$(abspath $(VENV))/bin/python3" "$(abspath src)" "$${cmd#*:}" > $(VENV)/bin/$${cmd%%:*}; \
	done
	@chmod 755 $(VENV)/bin/sangja-runtime $(VENV)/bin/sangja
# apt-get only runs when a package is missing, so a second `make install` is
# fast and works offline.
deb-packages:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/bin/python: | deb-packages
	$(PYTHON) -m venv $(VENV)

# Re-installed only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

# sangja-monitor (docs/engine.md), one per running container: static and small with musl
# (a few hundred kB of RSS), else glibc's gcc. Built to a temporary name, then renamed:
# running monitors keep the old binary.
$(MONITOR): native/monitor/sangja-monitor.c | deb-packages $(VENV)/bin/python
	@mkdir -p $(@D)
	@if command -v musl-gcc >/dev/null 2>&1; then \
	  musl-gcc -static -Os -Wall -Wextra -Werror -o $@.tmp $<; \
	else \
	  gcc -O2 -Wall -Wextra -Werror -o $@.tmp $<; \
	fi && mv -f $@.tmp $@

# sangja-exec (native/exec/sangja-exec.c), the last exec of every container process, run
# from a sealed memfd: it must be static (no loader or library of the container's may take
# it over), so musl, else glibc's static libc.
$(EXEC_HELPER): native/exec/sangja-exec.c | deb-packages $(VENV)/bin/python
	@mkdir -p $(@D)
	@if command -v musl-gcc >/dev/null 2>&1; then \
	  musl-gcc -static -Os -s -Wall -Wextra -Werror -o $@.tmp $<; \
	else \
	  gcc -static -O2 -s -Wall -Wextra -Werror -o $@.tmp $<; \
	fi && mv -f $@.tmp $@

# Root is needed for tests/integration; those tests skip themselves otherwise.
# Extra pytest options: make test PYTEST_ARGS='--tb=short -k lifecycle'
test: install
	$(VENV)/bin/python -m pytest -n 2 -q -p no:cacheprovider $(PYTEST_ARGS) tests

demo: install
	./scripts/demo.sh

bench: install
	$(VENV)/bin/python bench/runtime_start $(BENCH_ARGS)
	$(VENV)/bin/python bench/engine_run $(ENGINE_BENCH_ARGS)

# The Docker API's socket activation (docs/api.md): units only, never enabled here.
SYSTEMD_DIR ?= /etc/systemd/system
install-systemd: install
	@mkdir -p $(DESTDIR)$(SYSTEMD_DIR)
	install -m 644 contrib/systemd/sangja.socket $(DESTDIR)$(SYSTEMD_DIR)/sangja.socket
	sed -e 's|@BINDIR@|$(abspath $(VENV))/bin|' -e 's|@DOCDIR@|$(abspath docs)|' \
	  contrib/systemd/sangja.service > $(DESTDIR)$(SYSTEMD_DIR)/sangja.service
	@chmod 644 $(DESTDIR)$(SYSTEMD_DIR)/sangja.service

bench-api: install
	$(VENV)/bin/python bench/api $(API_BENCH_ARGS)

bench-build: install
	$(VENV)/bin/python bench/build $(BUILD_BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench/runtime_start
	$(VENV)/bin/mypy

man: install
	$(VENV)/bin/python -m sangja.cli.help_man docs/man

# Removes demo containers first, and refuses to rm -rf build/ while anything is
# mounted below it (a leaked container mount must not be deleted through).
clean:
	@if [ -x $(VENV)/bin/sangja-runtime ] && [ -d build/demo/state ]; then \
	  for id in $$($(VENV)/bin/sangja-runtime --root build/demo/state list -q 2>/dev/null); do \
	    $(VENV)/bin/sangja-runtime --root build/demo/state delete --force "$$id" || true; \
	  done; \
	fi
	@if awk '{print $$2}' /proc/self/mounts | grep -q '^$(CURDIR)/build/'; then \
	  echo "clean: something is still mounted under $(CURDIR)/build; not removing it" >&2; \
	  exit 1; \
	fi
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .cache src/*.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
