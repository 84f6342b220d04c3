"""The population study's models: small MLPs, ConvNets and vision transformers, trained by a plain loop.

Each model is `features` (images -> Z, the penultimate representation) followed by
`head` (Z -> logits), so Z is the input of the last Linear, as DSEMonitor measures it.
The study varies family, width, depth, training length and seed; a few specs are weak
on purpose (a handful of steps, a 2-unit bottleneck) so accuracy spans a wide range.

The three families put Z at different scales: the MLPs' ReLU features grow with training
(no normalization), the ConvNets' pass through BatchNorm and an average pool, and the ViTs'
end in a LayerNorm (|Z| ~ sqrt(D) times its learned gain), which is what makes a fixed
bandwidth mean different things from one family to the next.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("mlp", "cnn", "vit")
PATCH_SIZES = (7, 4, 2, 1)  # the ViT takes the first that divides both image sides: 7 on 28 x 28 digits
HEAD_WIDTH = 16  # the ViT's attention heads are 16 wide (one head below 32 units)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the population.

    Args:
        family: "mlp" (fully connected), "cnn" (ConvNet) or "vit" (vision transformer).
        width: hidden units per layer (mlp), channels of the first conv block (cnn;
            doubled at each further block), or the token width (vit).
        depth: hidden layers (mlp), conv blocks (cnn) or encoder blocks (vit), >= 1.
        steps: optimizer steps (batches) of training, >= 0.
        seed: seeds the initialization and the batch order.
    """

    family: str
    width: int
    depth: int
    steps: int
    seed: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        for name, minimum in (("width", 1), ("depth", 1), ("steps", 0), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

    @property
    def name(self) -> str:
        return f"{self.family}-w{self.width}-d{self.depth}-s{self.steps}-seed{self.seed}"


class PopulationModel(nn.Module):
    """`features` then a linear `head`; forward returns (Z, logits)."""

    def __init__(self, features: nn.Module, width: int, num_classes: int):
        super().__init__()
        self.features = features
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.features(x)
        return z, self.head(z)


def _mlp_features(spec: ModelSpec, in_features: int) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = [nn.Flatten()]
    previous = in_features
    for _ in range(spec.depth):
        layers += [nn.Linear(previous, spec.width), nn.ReLU()]
        previous = spec.width
    return nn.Sequential(*layers), spec.width


def _cnn_features(spec: ModelSpec, in_channels: int) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    previous = in_channels
    for block in range(spec.depth):
        channels = spec.width * 2**block
        layers += [nn.Conv2d(previous, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2)]
        previous = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), previous


class _PatchTransformer(nn.Module):
    """Images (B, C, H, W) -> Z (B, width): patch embedding, pre-norm encoder blocks, mean of the tokens, LayerNorm.

    Patches of p x p pixels (the first of PATCH_SIZES dividing H and W) are embedded by one
    strided conv, given a learned position embedding and passed through `depth` blocks of
    `nn.TransformerEncoderLayer` (pre-norm, GELU, MLP twice as wide, no dropout). Z is the
    LayerNorm of the mean token, as in ViTs with average pooling.
    """

    def __init__(self, width: int, depth: int, image_shape: tuple[int, int, int]):
        super().__init__()
        channels, height, side = image_shape
        patch = next(size for size in PATCH_SIZES if height % size == 0 and side % size == 0)
        self.embed = nn.Conv2d(channels, width, patch, stride=patch)
        self.position = nn.Parameter(0.02 * torch.randn(1, (height // patch) * (side // patch), width))
        block = nn.TransformerEncoderLayer(
            width,
            max(1, width // HEAD_WIDTH),
            dim_feedforward=2 * width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        return self.norm(self.blocks(tokens).mean(1))


def build_model(spec: ModelSpec, image_shape: tuple[int, int, int], num_classes: int = 10) -> PopulationModel:
    """The model of `spec` for images of shape (C, H, W), initialized from `spec.seed`."""
    channels, height, width = image_shape
    if spec.family == "vit" and spec.width % max(1, spec.width // HEAD_WIDTH):
        raise ValueError(f"a vit's width must be a multiple of its {spec.width // HEAD_WIDTH} heads, got {spec.width}")
    if spec.family == "cnn" and min(height, width) < 2**spec.depth:
        raise ValueError(
            f"a cnn of depth {spec.depth} halves {height}x{width} images {spec.depth} times; use a smaller depth"
        )
    with torch.random.fork_rng(devices=[]):  # seeded init without moving the caller's RNG
        torch.manual_seed(spec.seed)
        if spec.family == "mlp":
            features, feature_width = _mlp_features(spec, channels * height * width)
        elif spec.family == "vit":
            features, feature_width = _PatchTransformer(spec.width, spec.depth, image_shape), spec.width
        else:
            features, feature_width = _cnn_features(spec, channels)
        return PopulationModel(features, feature_width, num_classes)


def train_model(
    model: PopulationModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
) -> float:
    """Train with Adam on random batches of (images (N, C, H, W), labels (N,)); returns the last loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    order = torch.randperm(len(images), generator=generator)
    position = 0
    for _ in range(steps):
        if position + batch_size > len(order):
            order, position = torch.randperm(len(images), generator=generator), 0
        rows = order[position : position + batch_size]
        position += batch_size
        _, logits = model(images[rows])
        loss = F.cross_entropy(logits, labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def representations_and_accuracy(
    model: PopulationModel, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> tuple[torch.Tensor, float]:
    """Z of every image (N, width), in eval mode, and the accuracy of the head's argmax."""
    model.eval()
    representations, correct = [], 0
    for start in range(0, len(images), batch_size):
        z, logits = model(images[start : start + batch_size])
        representations.append(z)
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return torch.cat(representations), correct / len(images)
