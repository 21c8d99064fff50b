"""The Audio Spectrogram Transformer (Gong, Chung & Glass, 2021), pretrained on AudioSet's two
million clips, as a backbone beside musicnn: for Colab users with a GPU and internet.

Weights come from the Hugging Face hub through `transformers` (an optional dependency: Colab
has it; `pip install transformers`) and stay in its cache (`HF_HOME`; on Colab the notebooks
keep it on Drive, so a new session does not download ~350 MB again). A checkpoint id may also be
a local folder written with `save_pretrained` (the tests make a tiny one). Our 3 s windows go
through the checkpoint's own feature extractor: mono at 16 kHz, a 128-band Kaldi filterbank
padded to the model's 1,024 frames and normalised with AudioSet's statistics.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
import torchaudio
from torch import nn

from helpers.core.config import SAMPLE_RATE
from helpers.models.backbone import Backbone, BackboneUnavailable

DEFAULT_CHECKPOINT = "MIT/ast-finetuned-audioset-10-10-0.4593"  # AudioSet fine-tune, BSD-3-Clause
LAYERS = ("pooled",)  # the mean of the classification and distillation tokens
INSTALL = "pip install transformers"


class AstUnavailable(BackboneUnavailable):
    """`transformers` is missing, or the weights are neither cached nor downloadable."""


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise AstUnavailable(f"the AST backbone needs transformers ({INSTALL}; Colab has it), "
                             "or choose musicnn") from err
    return transformers


def hf_home() -> str:
    """Where the Hugging Face cache is (what `HF_HOME` says, else its default)."""
    return os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))


def _names_a_folder(checkpoint: str) -> bool:
    """A path (absolute, from ".", "~", or deeper than a hub id's "owner/name")."""
    return (Path(checkpoint).is_absolute() or checkpoint.startswith((".", "~"))
            or checkpoint.count("/") > 1)


def load(checkpoint: str):
    """(ASTModel, ASTFeatureExtractor) of `checkpoint`, a hub id or a `save_pretrained` folder;
    one-line `AstUnavailable` when neither the cache nor the network has it."""
    transformers = _transformers()
    transformers.utils.logging.disable_progress_bar()  # one line per file from irmas-predict
    if _names_a_folder(checkpoint) and not Path(checkpoint).expanduser().is_dir():
        # asked of the hub, a path is minutes of retries before the same answer
        raise AstUnavailable(f"the AST folder {checkpoint} is gone (moved or deleted?): put it "
                             "back, or choose musicnn")
    try:
        extractor = transformers.ASTFeatureExtractor.from_pretrained(checkpoint)
        model = transformers.ASTModel.from_pretrained(checkpoint)
    except OSError as err:
        raise AstUnavailable(
            f"the AST weights {checkpoint!r} are not in the Hugging Face cache ({hf_home()}) and "
            "cannot be downloaded here: run once with internet (about 350 MB), or choose musicnn"
        ) from err
    return model, extractor


def weights_sha256(model: nn.Module) -> str:
    """A digest of every weight, in name order: which weights a frozen head was trained on."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ASTFeatures(Backbone):
    """AST as a backbone: peak-normalised stereo clips `[B, 2, L]` at 44.1 kHz -> mono 16 kHz
    -> the checkpoint's filterbank (1,024 frames) -> the pooled embedding `[B, hidden]`.

    `augment` is the slot for the recipe's spectrogram EQ/masks when the backbone is
    fine-tuned (in dB; the filterbank's normalised units are converted)."""

    name, title, install = "ast", "AST", INSTALL

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT, layer: str = "pooled",
                 parts: tuple | None = None) -> None:
        """`parts`: an (ASTModel, ASTFeatureExtractor) already built (`at_random`)."""
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"AST layer {layer!r}; choose one of {LAYERS}")
        model, extractor = parts if parts is not None else load(checkpoint)
        self.checkpoint, self.layer, self.net, self.extractor = checkpoint, layer, model, extractor
        self.revision = getattr(model.config, "_commit_hash", None) or "local"
        self.weights_sha256 = weights_sha256(model) if parts is None else None
        self.n_features = model.config.hidden_size
        # filterbank units are (log energy - mean) / (2 std); a dB is ln(10) / 10 of log energy
        self.db_per_unit = 2 * extractor.std * 10 / math.log(10)
        self.augment: nn.Module = nn.Identity()

    @classmethod
    def at_random(cls, config=None) -> ASTFeatures:
        """The architecture of `config` (default: the AudioSet model's, full size) at random
        initialisation, with the default feature extractor: no download."""
        transformers = _transformers()
        config = config or transformers.ASTConfig()
        return cls("random-init", parts=(transformers.ASTModel(config),
                                         transformers.ASTFeatureExtractor()))

    def architecture(self) -> dict:
        """What rebuilds this network with no hub files: the model's and the feature
        extractor's configurations and the revision. A fine-tuned checkpoint stores it beside
        all its weights, so it predicts offline and never loads the pretrained ones first."""
        model = {k: v for k, v in self.net.config.to_dict().items()
                 if k not in ("id2label", "label2id")}  # AudioSet's 527 labels: not used here
        return {"model": model, "extractor": self.extractor.to_dict(),
                "revision": self.revision}

    @classmethod
    def rebuilt(cls, checkpoint: str, layer: str, architecture: dict) -> ASTFeatures:
        """The network `architecture()` describes, at random initialisation (the caller loads
        its weights), named as the checkpoint it came from."""
        transformers = _transformers()
        config = transformers.ASTConfig.from_dict(architecture["model"])
        extractor = transformers.ASTFeatureExtractor.from_dict(architecture["extractor"])
        features = cls(checkpoint, layer, parts=(transformers.ASTModel(config), extractor))
        features.revision = architecture["revision"]
        return features

    def identity(self) -> dict:
        return {**super().identity(), "revision": self.revision}

    def filterbank(self, waves: torch.Tensor) -> torch.Tensor:
        """The model's input `[B, frames, bands]` for clips `[B, 2, L]` at 44.1 kHz."""
        rate = self.extractor.sampling_rate
        mono = torchaudio.functional.resample(waves.float().mean(dim=1), SAMPLE_RATE, rate)
        values = self.extractor([m.cpu().numpy() for m in mono], sampling_rate=rate,
                                return_tensors="pt")["input_values"]
        return values.to(waves.device)

    def layers(self, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        spec = self.filterbank(waves)  # [B, frames, bands]
        spec = self.augment(self.db_per_unit * spec.transpose(1, 2).unsqueeze(1))
        spec = spec.squeeze(1).transpose(1, 2) / self.db_per_unit
        return {"pooled": self.net(input_values=spec).pooler_output}
