"""The model registry: one spec per trainable name, the settings a model resolves to, and no
name decoded anywhere else in the package."""

import ast
import json
from pathlib import Path

import pytest
import torch

from helpers.core.config import OFF, STAGE1, STAGE2, TrainingConfig
from helpers.models import networks, registry

REPO = Path(__file__).resolve().parents[1]


def _resolved(config: TrainingConfig, stage: str, name: str) -> TrainingConfig:
    return registry.resolve(config, stage, name).config


def test_every_spec_names_a_network_a_backbone_and_a_stage1_source_that_exist():
    for name, spec in registry.SPECS.items():
        assert spec.name == name and spec.network in networks.NETWORKS
        assert spec.backbone is None or spec.backbone in registry.BACKBONES
        assert spec.frozen <= (spec.backbone is not None), f"{name}: frozen without a backbone"
        if spec.stage1_source is not None:
            assert STAGE2 in spec.stages and STAGE1 in registry.spec(spec.stage1_source).stages
    assert set(registry.names(STAGE1)) == {"mel", "wave1d", "transfer-musicnn",
                                           "transfer-musicnn-mlp", "musicnn-finetune",
                                           "transfer-ast", "ast-finetune"}
    assert registry.wants_gpu(["mel", "transfer-ast", "ast-finetune"]) == ["transfer-ast",
                                                                           "ast-finetune"]


def test_an_unknown_name_or_stage_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet'; choose one of mel, wave1d"):
        registry.spec("resnet")
    with pytest.raises(ValueError, match="transfer trains in stage2, not in stage1"):
        registry.resolve(TrainingConfig(), STAGE1, "transfer")


def test_the_notebooks_default_lists_are_registry_names():
    for notebook, variable, stage in (("03_stage1_train", "models_to_train", STAGE1),
                                      ("05_stage2_train", "stage2_models", STAGE2)):
        cells = json.loads((REPO / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
        source = "".join(cells[next(i for i, c in enumerate(cells)
                                    if "parameters" in c["metadata"].get("tags", []))]["source"])
        names = {}
        exec(compile(ast.parse(source), notebook, "exec"), names)  # the cell holds literals only
        assert set(names[variable]) <= set(registry.names(stage)), notebook


def test_a_knob_given_per_model_applies_to_that_model_only():
    settings = TrainingConfig.of(epochs={"mel": 20, "wave1d": 1}, lr=2e-3,
                                 batch_size={"transfer": 32})
    mel = _resolved(settings, STAGE1, "mel")
    assert (mel.epochs, mel.lr, mel.batch_size, mel.per_model) == (20, 2e-3, 16, {})
    assert _resolved(settings, STAGE1, "wave1d").epochs == 1
    assert _resolved(settings, STAGE2, "wave1d-finetune").epochs == 1, "given for its network"
    assert _resolved(settings, STAGE2, "transfer-mel").batch_size == 32, "the transfer network"
    assert _resolved(settings, STAGE1, "musicnn-finetune").epochs == 30, "the rest: as given"
    tuned = settings.with_model("mel", lr=0.0)
    assert _resolved(tuned, STAGE1, "mel").lr == 0.0
    assert _resolved(settings, STAGE1, "mel").lr == 2e-3, "with_model leaves the original alone"


def test_the_defaults_are_the_recipe_and_each_model_fills_its_own():
    recipe = TrainingConfig()
    mel = registry.resolve(recipe, STAGE1, "mel")
    assert (mel.config.optimizer, mel.config.schedule, mel.config.lr,
            mel.config.batch_size) == ("adamw", "cosine", 1e-3, 16)
    assert mel.from_model == ("batch_size", "lr")
    head = registry.resolve(recipe, STAGE1, "transfer-musicnn")
    assert head.from_model == ("backbone", "batch_size", "head_hidden", "layer", "lr")
    assert head.config.head_hidden == 0, "a linear head unless a spec or the config says"
    assert recipe.mix_under and recipe.spec_masks and recipe.dynamic_mixing and recipe.nothing
    assert _resolved(recipe, STAGE1, "wave1d").lr == 3e-4, "the 2020 network's own rate"
    assert _resolved(recipe, STAGE1, "transfer-musicnn").batch_size == 64
    assert _resolved(TrainingConfig(lr=5e-4), STAGE1, "wave1d").lr == 5e-4, "given: for all"


def test_a_model_records_the_knobs_it_cannot_use_switched_off():
    recipe = TrainingConfig()
    stage2_mel = registry.resolve(recipe, STAGE2, "mel")
    c = stage2_mel.config
    assert (c.mix_under, c.label_smoothing) == (0.0, 0.0), "single-label only"
    assert c.dynamic_mixing and c.eq_db == 6.0 and c.backbone is None
    assert {"mix_under", "label_smoothing", "backbone"} <= set(stage2_mel.switched_off)
    assert all(getattr(c, k) == OFF[k] for k in stage2_mel.switched_off)
    wave = _resolved(recipe, STAGE1, "wave1d")
    assert (wave.eq_db, wave.spec_masks, wave.lr) == (0.0, False, 3e-4), "no log-mel front end"
    assert wave.mix_under == 0.5 and not wave.dynamic_mixing
    head = _resolved(recipe, STAGE1, "transfer-musicnn")
    assert (head.shift, head.gain_db, head.mix_under, head.backbone_lr) == (False, 0.0, 0.0, None)
    assert (head.backbone, head.label_smoothing, head.nothing) == ("MTT_musicnn", 0.1, 0.1)
    transfer = _resolved(recipe, STAGE2, "transfer-mel")
    assert (transfer.nothing, transfer.lr, transfer.batch_size) == (0.0, 1e-4, 64)
    assert _resolved(recipe, STAGE1, "musicnn-finetune").backbone_lr == 0.1
    row = registry.resolve(recipe, STAGE2, "transfer").row()
    assert row["reads"] == "frozen features of the Stage-1 wave1d of the mixes"
    assert "nothing" in row["switched off"]


@pytest.mark.parametrize("knobs, name, message", [
    ({"spec_masks": {"wave1d": False}}, "wave1d", "per-model setting wave1d: spec_masks does"),
    ({"shift": {"transfer-musicnn": False}}, "transfer-musicnn", "transfer-musicnn: shift does"),
])
def test_a_per_model_knob_its_model_cannot_use_is_refused(knobs, name, message):
    settings = TrainingConfig.of(**knobs)
    with pytest.raises(ValueError, match=message):
        registry.resolve(settings, STAGE1, name)
    registry.resolve(settings, STAGE1, "mel")  # other models: fine


def _name_decodings(path: Path, names: set[str]) -> list[str]:
    """Comparisons with a model or network name, and prefix/suffix parses, in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            constants = [c.value for c in (node.left, *node.comparators)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            found += [f"{path.name}:{node.lineno} compares {c!r}" for c in constants if c in names]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("startswith", "endswith", "removeprefix", "removesuffix")
                and node.args and isinstance(node.args[0], ast.Constant)
                and any(part in str(node.args[0].value) for part in ("transfer", "finetune",
                                                                     "frozen"))):
            found.append(f"{path.name}:{node.lineno} parses {node.args[0].value!r}")
    return found


def test_no_module_outside_the_registry_decodes_a_model_name(tmp_path):
    names = set(registry.SPECS) | set(networks.NETWORKS) | set(registry.BACKBONES)
    modules = [p for p in (REPO / "helpers").rglob("*.py") if p.name != "registry.py"]
    assert [f for p in modules for f in _name_decodings(p, names)] == []
    planted = tmp_path / "planted.py"  # the rule finds what it looks for
    planted.write_text('if name == "mel" or name.removesuffix("-finetune"):\n    pass\n')
    assert len(_name_decodings(planted, names)) == 2


def test_a_head_with_hidden_layers_is_one_entry_and_builds_from_its_settings():
    spec = registry.spec("transfer-musicnn-mlp")
    settings = registry.resolve(TrainingConfig(), STAGE2, spec).config
    assert settings.head_hidden == [512, 256] and settings.batch_size == 64
    model = networks.build(spec.network, n_outputs=4, **spec.network_kwargs(settings))
    linear = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(200, 512), (512, 256),
                                                                 (256, 4)]
    assert networks.conv_linear_parameters(model) == 200 * 512 + 512 + 512 * 256 + 256 + 1028
    model.eval()
    assert model(torch.randn(3, 200)).shape == (3, 4), "on stored penultimate features"
