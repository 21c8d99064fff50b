"""The networks: the 2020 project's 1D CNN on raw audio (`wave1d`) reproduced exactly, and a
compact log-mel 2D CNN (`mel`).

Both take peak-normalised stereo audio `[B, 2, 132299]` and return logits `[B, n_outputs]`;
`features()` returns the embedding before the classifier, which Stage 2's transfer head uses.
Every network here is a `Network`: what the fit loop, checkpoints and the recipe rely on is
declared there. Which trainable model uses which network: `helpers.models.registry`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torchaudio
from torch import nn

from helpers.core.config import CLIP_SAMPLES, SAMPLE_RATE
from helpers.models import audioset, musicnn
from helpers.models.backbone import Backbone

# (in, out, kernel, pool) of the 2020 project's six Conv1d-ReLU-MaxPool1d-BatchNorm1d blocks.
WAVE1D_BLOCKS = ((2, 64, 11, 2), (64, 64, 9, 2), (64, 64, 7, 4), (64, 32, 5, 4), (32, 16, 5, 4),
               (16, 2, 5, 4))


class Network(nn.Module):
    """A model of this project: logits from `forward`, and what the fit loop (the backbone's
    learning rate), the recipe (the spectrogram-augmentation slot) and checkpoints (the
    backbone a head depends on) need to know, declared with defaults for a network trained
    from scratch."""

    hears_audio: ClassVar[bool] = True  # False: reads features a Stage-1 model computed
    log_mel: ClassVar[bool] = False  # has a log-mel front end, the recipe's EQ/masks slot

    def backbone_parameters(self) -> list[nn.Parameter]:
        """What trains at the backbone learning rate (`TrainingConfig.backbone_lr`)."""
        return []

    def set_augment(self, module: nn.Module) -> None:
        """Put the recipe's spectrogram augmentation between the front end and the network."""
        raise TypeError(f"{type(self).__name__} has no log-mel front end to augment")

    def backbone_identity(self) -> dict | None:
        """The pretrained backbone its features come from (None: trained from scratch); a
        fine-tuned backbone's weights are in the state dict, so only its origin is named."""
        return None

    def architecture(self) -> dict | None:
        """What rebuilds a fine-tuned backbone with no downloads (None: nothing needed)."""
        return None


def _wave1d_out_length(length: int) -> int:
    for _, _, kernel, pool in WAVE1D_BLOCKS:
        length = (length - kernel + 1) // pool
    return length


class Wave1DCNN(Network):
    """The 2020 project's "best architecture": 81,166 conv + linear parameters on stereo
    `[B, 2, 132299]` waveforms."""

    def __init__(self, *, n_outputs: int, length: int = CLIP_SAMPLES,
                 dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, kernel, pool in WAVE1D_BLOCKS:
            layers += [nn.Conv1d(c_in, c_out, kernel), nn.ReLU(), nn.MaxPool1d(pool),
                       nn.BatchNorm1d(c_out)]
        self.extractor = nn.Sequential(*layers, nn.Flatten())
        self.n_features = WAVE1D_BLOCKS[-1][1] * _wave1d_out_length(length)  # 2 x 127 = 254
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.n_features, n_outputs))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LogMel(nn.Module):
    """Stereo waveform -> log-mel `[B, 1, n_mels, frames]`, computed on the model's device."""

    def __init__(self, n_mels: int = 96, n_fft: int = 2048, hop: int = 1024) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            SAMPLE_RATE, n_fft=n_fft, hop_length=hop, n_mels=n_mels, f_min=30.0,
            f_max=SAMPLE_RATE / 2)
        self.to_db = torchaudio.transforms.AmplitudeToDB(top_db=80.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # the FFT wants float32
            spec = self.to_db(self.mel(x.float().mean(dim=1)))
        return spec.unsqueeze(1)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class MelCNN(Network):
    """Log-mel front end, four 3x3 conv blocks (32-64-128-256), global pooling, one linear layer.

    A small VGG-style spectrogram CNN as in Han et al. (2017, predominant-instrument recognition
    on IRMAS) with PANNs' (Kong et al., 2020) per-band input batch norm and max+mean pooling
    over time, sized for ~20x less compute per clip than Wave1DCNN. Unlike PANNs it keeps the
    frequency axis (channels x 6 remaining bands) instead of averaging it away: timbre lives in
    the spectral envelope, and on the demo set this raised validation accuracy markedly.
    """

    log_mel = True

    def __init__(self, *, n_outputs: int, n_mels: int = 96,
                 widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMel(n_mels)
        self.augment: nn.Module = nn.Identity()  # training-time EQ/masks (`augment`), no weights
        self.norm = nn.BatchNorm2d(n_mels)  # per mel band, as PANNs' bn0
        chans = (1, *widths)
        self.blocks = nn.Sequential(*(_conv_block(a, b) for a, b in zip(chans, chans[1:])))
        self.n_features = widths[-1] * (n_mels // 2 ** len(widths))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.n_features, n_outputs))

    def set_augment(self, module: nn.Module) -> None:
        self.augment = module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.augment(self.frontend(x))  # [B, 1, mels, T]
        spec = self.norm(spec.transpose(1, 2)).transpose(1, 2)
        h = self.blocks(spec).flatten(1, 2)  # [B, C x bands, T']
        return h.amax(dim=2) + h.mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TransferHead(Network):
    """The 2020 project's Stage-2 transfer head on frozen Stage-1 features: Dropout(0.2) -> 254->100
    -> 100->50 -> 50->4, no activations in between (30,754 parameters), as it had it."""

    hears_audio = False

    def __init__(self, n_features: int = 254, *, n_outputs: int,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_features, 100),
                                    nn.Linear(100, 50), nn.Linear(50, n_outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class MusicnnFeatures(Backbone):
    """musicnn (`helpers.models.musicnn`, trained on real music) as a backbone: peak-normalised
    stereo clips `[B, 2, L]` at 44.1 kHz -> its 3 s log-mel patches -> one layer (`pool`,
    `penultimate` or `taggram`), averaged over a clip's patches -> `[B, n_features]`.

    The log-mel patches come from `musicnn.log_mel_patches`' steps (soxr on the CPU, no
    gradient needed); `augment` is the slot for the recipe's spectrogram EQ/masks when the
    backbone is fine-tuned. Batch norm keeps the pretrained statistics in training too.
    """

    name, title, install = "musicnn", "musicnn", musicnn.INSTALL

    def __init__(self, checkpoint: str = musicnn.DEFAULT_CHECKPOINT,
                 layer: str = musicnn.DEFAULT_LAYER, pretrained: bool = True) -> None:
        super().__init__()
        if layer not in musicnn.LAYERS:
            raise ValueError(f"musicnn layer {layer!r}; choose one of {sorted(musicnn.LAYERS)}")
        self.checkpoint, self.layer = checkpoint, layer
        self.net = musicnn.Musicnn()
        self.weights_sha256 = None
        if pretrained:
            state, self.weights_sha256 = musicnn.converted_state(checkpoint)
            self.net.load_state_dict(state)
        self.n_features = musicnn.LAYERS[layer]
        self.augment: nn.Module = nn.Identity()

    def train(self, mode: bool = True) -> MusicnnFeatures:
        super().train(mode)
        for m in self.net.modules():  # pretrained statistics stay (small, synthetic batches)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def layers(self, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's features `[B, width]` (`musicnn.LAYERS`), each averaged over patches."""
        spec = musicnn.log_mel(musicnn.to_16k_mono(waves, SAMPLE_RATE).to(waves.device))
        per_clip = max(1, spec.shape[1] // musicnn.PATCH_FRAMES)
        patches = torch.cat([musicnn.patches_of(s)[:per_clip] for s in spec])  # [B*n, 187, 96]
        # the recipe's EQ/masks work in dB; musicnn's log10 units are 10 dB
        patches = self.augment(10 * patches.transpose(1, 2).unsqueeze(1)).squeeze(1)
        out = self.net(patches.transpose(1, 2) / 10)
        return {k: v.flatten(1).view(len(waves), per_clip, -1).mean(dim=1)
                for k, v in out.items()}


class Head(nn.Module):
    """A small head on backbone features: standardised (batch norm), dropout, then linear, or
    first a hidden ReLU layer of each width of `hidden` (a number: one layer; 0 or empty:
    none), so it can untangle what a linear read-out of one pooled vector cannot."""

    def __init__(self, n_features: int, n_outputs: int, *, hidden: int | list[int] = 0,
                 dropout: float = 0.2) -> None:
        super().__init__()
        widths = [hidden] if isinstance(hidden, int) and hidden else list(hidden or [])
        layers: list[nn.Module] = [nn.BatchNorm1d(n_features), nn.Dropout(dropout)]
        for a, b in zip([n_features, *widths], widths):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        layers.append(nn.Linear(widths[-1] if widths else n_features, n_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class PretrainedClassifier(Network):
    """A pretrained backbone + `Head`, frozen (only the head trains, and a checkpoint holds only
    the head: the backbone is rebuilt from where it came from) or fine-tuned (the whole network
    trains, and a checkpoint holds it all: ~350 MB for AST, 3 MB for musicnn).

    `forward` takes clips `[B, 2, L]`, or `[B, n_features]` features this backbone already
    computed (frozen heads train on cached features, `embed`)."""

    log_mel = True  # musicnn's and AST's spectrograms

    def __init__(self, backbone: Backbone, *, n_outputs: int, hidden: int | list[int] = 0,
                 frozen: bool = True, dropout: float = 0.2) -> None:
        super().__init__()
        self.frozen = frozen
        self.backbone = backbone
        self.head = Head(self.backbone.n_features, n_outputs, hidden=hidden, dropout=dropout)
        if frozen:
            self.backbone.requires_grad_(False)
            self.register_state_dict_post_hook(_without_backbone)
            self.register_load_state_dict_post_hook(_backbone_not_missing)

    def set_augment(self, module: nn.Module) -> None:
        self.backbone.augment = module

    def backbone_identity(self) -> dict:
        identity = self.backbone.identity()
        return identity if self.frozen else {**identity, "weights_sha256": None}

    def architecture(self) -> dict | None:
        return None if self.frozen else self.backbone.architecture()

    def train(self, mode: bool = True) -> PretrainedClassifier:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.ndim == 2 else self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MusicnnClassifier(PretrainedClassifier):
    """musicnn (`MusicnnFeatures`, from the musicnn wheel) + a head."""

    def __init__(self, *, n_outputs: int, checkpoint: str = musicnn.DEFAULT_CHECKPOINT,
                 layer: str = musicnn.DEFAULT_LAYER, hidden: int | list[int] = 0,
                 frozen: bool = True,
                 dropout: float = 0.2) -> None:
        super().__init__(MusicnnFeatures(checkpoint, layer), n_outputs=n_outputs, hidden=hidden,
                         frozen=frozen, dropout=dropout)


class ASTClassifier(PretrainedClassifier):
    """The AudioSet transformer (`audioset.ASTFeatures`, from the Hugging Face cache) + a head."""

    def __init__(self, *, n_outputs: int, checkpoint: str = audioset.DEFAULT_CHECKPOINT,
                 layer: str = "pooled", hidden: int | list[int] = 0, frozen: bool = True,
                 dropout: float = 0.2, architecture: dict | None = None) -> None:
        """`architecture`: what a fine-tuned checkpoint stored (`ASTFeatures.architecture`),
        to rebuild it without the Hugging Face cache; its weights are loaded after."""
        backbone = (audioset.ASTFeatures.rebuilt(checkpoint, layer, architecture)
                    if architecture else audioset.ASTFeatures(checkpoint, layer))
        super().__init__(backbone, n_outputs=n_outputs, hidden=hidden, frozen=frozen,
                         dropout=dropout)


def _without_backbone(module, state, prefix, local_metadata) -> None:
    for key in [k for k in state if k.startswith(f"{prefix}backbone.")]:
        del state[key]


def _backbone_not_missing(module, incompatible) -> None:
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys
                                    if not k.startswith("backbone.")]


# The networks by the name a checkpoint's `model` field stores; which trainable models use
# them, and how: `registry.SPECS`.
NETWORKS: dict[str, type[Network]] = {"wave1d": Wave1DCNN, "mel": MelCNN,
                                      "transfer": TransferHead, "musicnn": MusicnnClassifier,
                                      "ast": ASTClassifier}
# Names older checkpoints used: "seed" was the 2020 project's 1D CNN (same weights, new name).
RENAMED = {"seed": "wave1d"}


def network_class(name: str) -> type[Network]:
    """The class of network `name` (a checkpoint's `model` field; older names accepted)."""
    name = RENAMED.get(name, name)
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[name]


def build(name: str, **kwargs) -> Network:
    """Network `name` (`wave1d`, `mel`, `transfer`, `musicnn` or `ast`) built with `kwargs`."""
    return network_class(name)(**kwargs)


def count_parameters(model: nn.Module, kinds: tuple[type, ...] | None = None, *,
                     trainable_only: bool = False) -> int:
    """Parameters of `model`, optionally only of modules of `kinds` (e.g. conv and linear)."""
    modules = [m for m in model.modules() if kinds is None or isinstance(m, kinds)]
    params = {id(p): p for m in modules for p in m.parameters(recurse=kinds is None)}
    return sum(p.numel() for p in params.values() if p.requires_grad or not trainable_only)


def conv_linear_parameters(model: nn.Module) -> int:
    """The 2020 project's "learnable parameters": the convolutions' and linear layers' that
    train (no batch norm; a frozen backbone's not counted), one rule for every model."""
    return count_parameters(model, (nn.Conv1d, nn.Conv2d, nn.Linear), trainable_only=True)
