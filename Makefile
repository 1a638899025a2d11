# raman-edge: the two commands of the README, the documentation site, plus the benchmark and the shipped-model recipes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SHARED ?= ../shared/datasets
MODEL  := models/sers-pesticides
TARGET ?= trixie-aarch64

.PHONY: demo fleet-demo test docs lint bench bench-protocol bench-service bench-compare bench-models bench-library bench-identify bench-transfer bench-acquisition bench-fleet \
    models libraries installer board-test unit-test clean

# An extra with test also gets spc-spectra, the SPC reader the tests compare with: its setup.py imports NumPy,
# so it builds only without build isolation.
$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$*]"
	case ",$*," in *,test,*) $(PY) -m pip install --quiet setuptools && \
	    $(PY) -m pip install --quiet --no-build-isolation "spc-spectra==0.4.0";; esac
	touch $@

# The whole loop: a simulated spectrometer on a pty, the service on it with the shipped model,
# triggers through the control port, verdicts, a fresh record; then the example files classified directly.
demo: $(VENV)/.installed-device
	$(PY) -m tools demo --model $(MODEL) --measurements 6
	$(VENV)/bin/raman-device classify --model $(MODEL) --format table $(MODEL)/examples/*/*

# A whole fleet on this machine: Mosquitto, the collector, DEVICES (default 3) simulated devices with their uplinks,
# measurements stored centrally once each, a signed rollout to all, the dashboard; a report (docs/fleet.md).
fleet-demo: $(VENV)/.installed-device,fleet
	$(PY) -m tools fleet-demo $(if $(DEVICES),--devices $(DEVICES))

# The full test suite (device, trainer with TensorFlow, TFLite parity, and the fleet against the real Mosquitto and
# PostgreSQL it starts itself: the test extra includes the fleet extra).
test: $(VENV)/.installed-device,train,test
	$(PY) -m pytest -q

# Lint and import order of every Python file (configuration in pyproject.toml).
lint: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check .

# The documentation site (docs/, mkdocs.yml) with its API reference, into site/; broken links and anchors fail it.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# Latency, throughput, cold start, memory and FLOP of the shipped model.
bench: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_device.py

# The published 10 x 15-fold protocol: vectorised engine against the naive Keras loop.
bench-protocol: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_protocol.py

# The measurement service: trigger-to-verdict overhead, idle memory and CPU.
bench-service: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_service.py

# Time to verdict: fixed against adaptive acquisition on every simulator, scenes of real SERS spectra at a
# range of signal strengths; the service's start-up and its overhead beyond acquisition.
bench-acquisition: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_acquisition.py --datasets $(SHARED)

# The fleet on one local Mosquitto: collector ingest of 200 devices' backlog into SQLite against a bare subscriber,
# latency from commit to central commit, the uplink's memory (needs mosquitto: apt-get install mosquitto).
bench-fleet: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_fleet.py

# The same samples on three simulated instruments: accuracy lost between them, with and without calibration
# (laser line, intensity response, resolution) and augmentation (QUICK=1: a smoke run; WRITE=1: docs/reports/transfer.md).
bench-transfer: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_transfer.py --datasets $(SHARED) $(if $(QUICK),--quick) $(if $(WRITE),--write)

# Library search: one spectrum against 100 to 10,000 entries, time and memory, beside a straightforward search.
bench-library: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_library.py

# Identification beside the shipped classifier on both shared sets: library search, verification, and the
# classify-mode verdict on cross-validated synthetic mixtures (QUICK=1: a smoke run; WRITE=1: docs/reports/identify.md).
bench-identify: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_identify.py --datasets $(SHARED) $(if $(QUICK),--quick) $(if $(WRITE),--write)

# Every model on the real SERS pesticide set, 0.5 ppm held out: accuracy, cost, accuracy against SNR.
bench-compare: $(VENV)/.installed-device,train,test
	time $(VENV)/bin/raman-train compare $(SHARED)/sersformer_pesticides/sersformer_pesticides.npz \
	    --report docs/reports/compare-sers --split holdout:concentration_ppm=0.5 --force

# The default fit against its family, scikit-learn baselines and the best of compare, on every shared data set
# (SERS 0.5 ppm held out; microplastics sea water held out, with SNR 10 and 5, and repeated 5-fold); targets checked.
bench-models: $(VENV)/.installed-device,train,test
	$(PY) benchmarks/bench_models.py $(if $(QUICK),--quick)

# Rebuild the shipped field models from the SERS pesticide and RaMPP microplastics data sets (recipes
# in models/recipes, timing in the model cards).
models: $(VENV)/.installed-device,train,test
	models/recipes/sers-pesticides.sh $(SHARED)
	models/recipes/microplastics.sh $(SHARED)

# Rebuild the shipped reference libraries (models/libraries) from the same data sets (recipes in models/recipes).
libraries: $(VENV)/.installed-device,train,test
	models/recipes/sers-pesticides-library.sh $(SHARED)
	models/recipes/microplastics-library.sh $(SHARED)

# The offline installer for a board: wheels pinned by hash, models, unit, udev rule, install.sh ->
# dist/raman-edge-VERSION-$(TARGET).tar.gz, and nothing else written. TARGET: trixie-aarch64 (today's Raspberry
# Pi OS), bookworm-aarch64 (Legacy), bookworm-aarch64-legacy (tflite-runtime), ...-x86_64, host (this machine).
# For trixie it first builds lgpio from source in an emulated root (root, debootstrap, qemu; cached in build/).
installer: $(VENV)/.installed-device
	$(PY) -m tools installer --target $(TARGET)

# The installer on an emulated Raspberry Pi (debootstrap, qemu-user, Pi 4 CPU), offline, used step by step as
# docs/board.md says; needs root. Roots are cached in build/roots.
board-test: $(VENV)/.installed-device
	$(PY) -m tools board-test --target $(TARGET)

# The unit under a real systemd: this machine's installer installed with install.sh in a Debian bookworm
# container booted by systemd-nspawn, then readiness, the control socket and record, TFLite under
# MemoryDenyWriteExecute, no network, read-only system, watchdog, restarts and a clean stop (docs/unit-test.md).
# As root; the container's root is kept in build/roots.
unit-test: $(VENV)/.installed-device
	$(PY) -m tools unit-test

clean:
	@! grep -q ' $(CURDIR)/build/' /proc/self/mounts || { echo 'something is mounted under build/ (a stopped board test): umount -R it first'; exit 1; }
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache
