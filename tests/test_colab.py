"""The Colab set-up: one identical notebook cell, and the apt logic run for real on this machine."""

import importlib.util
import os
import shutil
import subprocess
import sys
import types

import nbformat
import pandas as pd
import pytest
from conftest import REPO

from helpers import colab, notebooks
from helpers.core import config
from helpers.core.config import STAGE2, TrainingConfig
from helpers.data import dataset, irmas
from helpers.demo import synth
from helpers.models import registry


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_every_notebook_has_the_same_set_up_cell_second_and_only_01_installs_apt():
    cells = {p.name: _code_cells(p)[1].source for p in notebooks.notebook_paths(REPO / "notebooks")}
    first = cells.pop("01_download.ipynb")
    later = next(iter(cells.values()))
    assert all(source == later for source in cells.values()), "set-up cells of 02-06 differ"
    for cell in (first, later):
        assert 'if "google.colab" in sys.modules:' in cell
        assert "%pip install -q /content/irmas-instruments" in cell and " -e " not in cell
        assert "torch" not in cell.split("%pip install", 1)[1].split("\n", 1)[0]
    assert 'colab.setup(mount=mount_drive, renders=config.source(source) == "demo")' in first
    assert later.rstrip().endswith("colab.setup(mount=mount_drive)"), "02-06 render nothing"


def test_with_fluidsynth_and_soundfonts_present_nothing_is_installed(capsys):
    assert colab.missing_demo_packages() == []
    assert colab.ensure_demo_packages() == []
    colab.setup(mount=True, renders=True)  # outside Colab: no Drive, nothing to install
    out = capsys.readouterr().out
    assert "FluidSynth and both soundfonts present" in out and "installing" not in out
    assert "GPU" in out


def test_missing_soundfonts_are_named_by_their_packages(tmp_path, monkeypatch):
    tim = synth.locate_soundfont("TimGM6mb.sf2")
    monkeypatch.setattr(synth, "SOUNDFONT_DIRS", (tmp_path,))
    monkeypatch.setitem(sys.modules, "pretty_midi", None)
    assert colab.missing_demo_packages() == ["fluid-soundfont-gm", "timgm6mb-soundfont"]
    shutil.copy(tim, tmp_path / "TimGM6mb.sf2")  # a soundfont copied by hand counts
    assert colab.missing_demo_packages() == ["fluid-soundfont-gm"]


def test_the_install_command_is_non_interactive_apt():
    update, install = colab.install_commands(["libfluidsynth3", "fluid-soundfont-gm"])
    assert update == ["apt-get", "update", "-qq"]
    assert install[:3] == ["apt-get", "install", "-y"]
    assert install[-2:] == ["libfluidsynth3", "fluid-soundfont-gm"]


def test_nothing_to_install_runs_nothing():
    colab.install_packages([])  # no apt-get call, no error even without root


@pytest.mark.slow
def test_not_root_gets_an_error_naming_the_packages(tmp_path):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to drop to another user")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
              "-c"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    probe = subprocess.run([*nobody, "import helpers.colab"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run this interpreter on the repository: "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    code = ("from helpers import colab\n"
            "try:\n    colab.install_packages(['libfluidsynth3', 'timgm6mb-soundfont'])\n"
            "except colab.SetupError as err:\n    print(err)\n")
    done = subprocess.run([*nobody, code], cwd=tmp_path, capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "libfluidsynth3 timgm6mb-soundfont" in done.stdout and "root" in done.stdout
    assert 'source = "irmas"' in done.stdout


@pytest.mark.slow
def test_the_real_apt_get_install_path():
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("apt-get install needs root")
    reach = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
    if reach.returncode != 0:
        pytest.skip(f"apt is unreachable: {reach.stderr.strip()[-200:]}")
    colab.install_packages(["libfluidsynth3"])  # present: apt-get runs and changes nothing
    with pytest.raises(colab.SetupError, match="no-such-package-irmas.*source = \"irmas\""):
        colab.install_packages(["no-such-package-irmas"])
    assert colab.missing_demo_packages() == []


def test_a_drive_that_fails_to_mount_says_how_to_go_on(monkeypatch):
    def refuse(_where):
        raise ValueError("mount failed")

    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    google.colab.drive = types.SimpleNamespace(mount=refuse)
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    assert colab.in_colab()
    with pytest.raises(colab.SetupError, match="mount_drive = False"):
        colab.setup(mount=True)
    colab.setup(mount=False)  # the user chose local storage: no error


def test_on_a_gpu_less_colab_runtime_epochs_are_capped_and_said(capsys):
    config = TrainingConfig.of(epochs={"mel": 30, "wave1d": 30, "transfer": 30})
    assert colab.for_runtime(config, cpu_colab=False) == config
    capped = colab.for_runtime(config, cpu_colab=True)
    assert "No GPU" in capsys.readouterr().out
    capped_models = {n: s.cpu_epochs for n, s in registry.SPECS.items() if s.cpu_epochs}
    assert {"mel", "wave1d", "wave1d-finetune", "musicnn-finetune"} <= set(capped_models)
    for name, cap in capped_models.items():
        stage = registry.spec(name).stages[0]
        assert registry.resolve(capped, stage, name).config.epochs == cap
    assert registry.resolve(capped, STAGE2, "transfer").config.epochs == 30, (
        "cheap on a CPU: left alone")
    small = TrainingConfig(epochs=1)
    assert colab.for_runtime(small, cpu_colab=True) == small
    assert capsys.readouterr().out == ""  # already small: nothing to say


def test_on_colab_the_hugging_face_cache_is_kept_on_drive(tmp_path, monkeypatch, capsys):
    mount = tmp_path / "drive"
    monkeypatch.setattr(colab, "DRIVE_MOUNT", mount)
    monkeypatch.setattr(colab, "HF_CACHE_ON_DRIVE", mount / "MyDrive" / "project" / "huggingface")
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    google.colab.drive = types.SimpleNamespace(
        mount=lambda where: (mount / "MyDrive").mkdir(parents=True))
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    monkeypatch.setenv("HF_HOME", "restored after the test")
    monkeypatch.delenv("HF_HOME")
    colab.setup(mount=True)
    assert os.environ["HF_HOME"] == str(colab.HF_CACHE_ON_DRIVE)
    assert colab.HF_CACHE_ON_DRIVE.is_dir() and "AST weights" in capsys.readouterr().out
    monkeypatch.setenv("HF_HOME", str(tmp_path / "chosen"))
    assert colab.keep_hf_cache_on_drive() is None, "a cache the user chose stays"
    assert os.environ["HF_HOME"] == str(tmp_path / "chosen")


def test_ast_models_on_a_cpu_are_said_to_take_hours(capsys):
    line = colab.warn_without_gpu(["transfer-musicnn", "ast-finetune", "mel"], "cpu")
    assert line.startswith("ast-finetune:") and "hours" in line and "transfer-musicnn" in line
    assert capsys.readouterr().out.strip() == line
    assert colab.warn_without_gpu(["transfer-musicnn", "musicnn-finetune", "mel"], "cpu") is None
    assert colab.warn_without_gpu(["transfer-ast"], "cuda") is None, "a GPU: nothing to say"


def test_source_none_is_irmas_on_colab_and_the_demo_elsewhere(monkeypatch, tmp_path):
    assert config.source(None) == "demo" and config.source("irmas") == "irmas"
    assert config.run_dir(None, tmp_path) == tmp_path / "runs" / "demo"
    with pytest.raises(ValueError, match="choose one of"):
        config.source("IRMAS")
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert config.source(None) == "irmas"
    assert config.data_dir(None, tmp_path) == tmp_path / "data" / "irmas"
    assert config.source("demo") == "demo", "a choice stays a choice on Colab"


def test_a_later_notebook_names_the_run_and_refuses_another_source(tmp_path):
    run = tmp_path / "run"
    manifest = pd.DataFrame({c: [] for c in irmas.MANIFEST_COLUMNS})
    dataset.save_dataset(run, "irmas", tmp_path / "data", manifest=manifest, classes=("gac", "pia"))
    line = dataset.describe(run)
    assert "IRMAS" in line and "gac, pia" in line and "notebook 01" in line
    assert dataset.describe(run, "irmas", ["gac", "pia"]) == line
    with pytest.raises(ValueError, match="source='demo'.*'irmas'.*01_download"):
        dataset.describe(run, "demo")
    with pytest.raises(ValueError, match="instruments"):
        dataset.describe(run, None, "all")


def test_the_twin_pins_colabs_versions_but_not_its_cuda_torch():
    spec = importlib.util.spec_from_file_location("colab_constraints",
                                                  REPO / "tools" / "colab_constraints.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    freeze = ("gdown==5.2.2\nipywidgets==7.7.1\ntorch==2.11.0+cu128\nnvidia-cudnn-cu12==9.1\n"
              "cuda-bindings==12.9.7\ngoogle-colab @ file:///colabtools/x.tar.gz\n"
              "Jinja2==3.1.6\n")
    pins, notes = tool.constraints(freeze)
    assert pins == ["gdown==5.2.2", "ipywidgets==7.7.1", "jinja2==3.1.6"]
    assert len(notes) == 4 and all(n.startswith("# ") for n in notes)
    committed = (REPO / "tools" / "colab-constraints.txt").read_text()
    assert "gdown==5.2.2" in committed and "\ntorch==" not in committed
    assert not [line for line in committed.splitlines() if line.startswith(("nvidia-", "cuda-"))]
