# Likeness: `make run` and `make test` are the two commands a new user needs.
# Both install what is missing first (scripts/setup.sh), then build with cargo.
#
# libtorch comes from the PyPI `torch` wheel, installed once into a virtual environment
# in the user cache directory and shared by every clone and CI run.

SHELL := /bin/bash
TORCH_VERSION := 2.13.0
LIKENESS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/likeness
TORCH_VENV ?= $(LIKENESS_CACHE)/torch-$(TORCH_VERSION)

# The build finds libtorch through the venv's python (torch-sys with LIBTORCH_USE_PYTORCH=1).
export VIRTUAL_ENV := $(TORCH_VENV)
export PATH := $(TORCH_VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export TORCH_VENV
export TORCH_VERSION

CARGO ?= cargo

.PHONY: setup build run test bench fmt clippy clean-cache install uninstall dist deb

# Where `make install` puts Likeness (no root needed): bin/, lib/likeness/, share/.
PREFIX ?= $(HOME)/.local

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release

run: build
	./target/release/likeness

test: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) test --release --lib --bins --tests

bench: build
	./target/release/likeness bench

fmt:
	$(CARGO) fmt --all

# Installs the binary with the libraries it loads (rpath $$ORIGIN/../lib/likeness), the
# launcher entry and icons; it keeps working after `make clean-cache`.
install: build
	scripts/package.sh install --prefix "$(PREFIX)"

# Removes exactly what `make install` put under PREFIX.
uninstall:
	scripts/package.sh uninstall --prefix "$(PREFIX)"

# A relocatable archive in target/dist/ (LIKENESS_CUDA=1 for the CUDA build).
dist: build
	scripts/package.sh dist --out target/dist

# target/dist/likeness_<version>_amd64.deb: `sudo apt install ./target/dist/likeness_*.deb`.
deb: build
	scripts/package.sh deb --out target/dist

clean-cache:
	rm -rf "$(TORCH_VENV)"
