# Two commands do all the set-up on a fresh Debian machine (Python 3.11):
#   make demo   render the offline demo set and execute every notebook into runs/demo/
#   make test   lint and run the tests
# `make demo-full` then trains every model the seed's full 30 epochs (CPU: hours; GPU: minutes).
# Both create .venv when missing and install what they need.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont
# Local installs pin a torch/torchaudio pair that import together; Colab keeps its own.
TORCH := torch==2.14.1 torchaudio==2.11.0
DEMO_RUN := runs/demo
# On a CPU the seed's 1D CNN costs ~0.3 s per clip and step: the quick demo gives it 3 epochs.
DEMO_EPOCHS := "epochs={'mel': 30, 'seed': 3}" finetune_epochs=3

.PHONY: demo demo-full test lint manifest system-deps clean

demo: system-deps $(STAMP)
	$(PY) -m helpers.notebooks --run-dir $(DEMO_RUN) --set source=demo data_dir=data/demo $(DEMO_EPOCHS)
	@echo "executed notebooks, figures, caches and checkpoints are in $(DEMO_RUN)/"

demo-full: demo
	$(PY) -m helpers.notebooks --run-dir $(DEMO_RUN) --set source=demo data_dir=data/demo epochs=30 finetune_epochs=30

test: system-deps $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

manifest: $(STAMP)
	$(PY) -m helpers.irmas --shared ../shared/irmas --out data_manifest.csv

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
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs data *.egg-info .pytest_cache .ruff_cache
