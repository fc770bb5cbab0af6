# labeller: two commands for a fresh clone (README):
#   make demo   set everything up (system packages included) and run the end-to-end demo
#   make test   set everything up and run lint, the layering check and the tests
#
# Set-up choices (measured on the 2-core build machines):
# - torch is installed first as `torch==2.13.0`: pip takes that CPU build from local disk
#   in seconds, where an unpinned torch drags in a multi-GB CUDA build. pyproject only asks
#   for torch>=2.1, so a GPU workstation keeps the CUDA torch it already has
#   (`make setup TORCH_SPEC=` skips the pin).
# - open3d-cpu (105 MB) instead of open3d (401 MB, CUDA) on Linux x86-64: same API.
# - Debian packages: libusb-1.0-0 (`import open3d` needs it), the GL/EGL/xkb/fontconfig
#   libraries Qt's offscreen platform loads, libvulkan1 + mesa-vulkan-drivers (Open3D's
#   headless OffscreenRenderer), xvfb (a real GUI window on a machine without a display).
# - the ray extra (labeller batch --executor ray and its tests): ~7 s of pip install from the
#   local wheel cache, so it stays in the one test set-up (tests/test_batch_ray.py, marker
#   `ray`, skips with its reason where ray is missing).

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
SYSTEM_PACKAGES := libusb-1.0-0 libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 \
	libfontconfig1 libdbus-1-3 libglib2.0-0 libvulkan1 mesa-vulkan-drivers xvfb \
	libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
	libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-xkb1

.PHONY: setup system-packages demo test lint bench clean
.DEFAULT_GOAL := demo

setup: $(VENV)/.installed

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml | system-packages
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install -q "$(TORCH_SPEC)"; fi
	$(PY) -m pip install -q -e ".[dev,bench,ray]"
	touch $@

demo: setup
	$(VENV)/bin/labeller demo

lint: setup
	$(VENV)/bin/ruff check labeller tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) datasets/demo .pytest_cache
