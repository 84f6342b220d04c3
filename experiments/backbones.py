"""Backbones trained from scratch, each returning the pooled pre-classifier feature Z.

The paper's six: ResNet-50, ResNeXt-50 32x4d and ConvNeXt-Tiny (ConvNets), ViT-Tiny,
Swin-T and XCiT-nano (Transformers). torchvision builds all but XCiT-nano, which comes
from timm (optional: `pip install timm`). Two small CPU backbones serve the quickstart
and the CPU studies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import nn

PAPER_BACKBONES = ("resnet50", "resnext50", "convnext", "vit", "swin", "xcit")


def _without_head(model: nn.Module, attribute: str, index: int | None = None) -> nn.Module:
    """Replace the classifier (model.attribute, or its [index]-th layer) by an identity."""
    if index is None:
        setattr(model, attribute, nn.Identity())
    else:
        getattr(model, attribute)[index] = nn.Identity()
    return model


def _resnet50(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    return _without_head(torchvision.models.resnet50(), "fc"), 2048


def _resnext50(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    return _without_head(torchvision.models.resnext50_32x4d(), "fc"), 2048


def _convnext(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    return _without_head(torchvision.models.convnext_tiny(), "classifier", index=2), 768


def _vit_tiny(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    # ViT-Tiny: patch 16, depth 12, 3 heads, width 192 (MLP 4x), class-token feature.
    model = torchvision.models.VisionTransformer(
        image_size=image_size, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768
    )
    return _without_head(model, "heads"), 192


def _swin_t(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    return _without_head(torchvision.models.swin_t(), "head"), 768


def _xcit_nano(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    try:
        import timm
    except ImportError as error:
        raise ImportError("backbone 'xcit' (XCiT-nano) needs timm: pip install timm") from error
    model = timm.create_model("xcit_nano_12_p16_224", pretrained=False, num_classes=0, img_size=image_size)
    return model, model.num_features


def _small_cnn(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    """Two conv blocks and a 128-wide pooled feature: seconds per epoch on a CPU."""
    model = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return model, 128


def _mlp(image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(in_channels * image_size * image_size, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU()
    )
    return model, 64


BACKBONES: dict[str, Callable[[int, int], tuple[nn.Module, int]]] = {
    "resnet50": _resnet50,
    "resnext50": _resnext50,
    "convnext": _convnext,
    "vit": _vit_tiny,
    "swin": _swin_t,
    "xcit": _xcit_nano,
    "small_cnn": _small_cnn,
    "mlp": _mlp,
}

_THREE_CHANNEL_ONLY = set(PAPER_BACKBONES)


def build_backbone(name: str, image_size: int, in_channels: int) -> tuple[nn.Module, int]:
    """The backbone `name` and the width of its feature Z."""
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {tuple(BACKBONES)}, got {name!r}")
    if name in _THREE_CHANNEL_ONLY and in_channels != 3:
        raise ValueError(f"backbone {name!r} takes 3-channel images; set data.three_channels: true")
    return BACKBONES[name](image_size, in_channels)


def paper_init(model: nn.Module, conv_std: float | None = None) -> None:
    """The paper's initialization, in place.

    Conv weights Kaiming-normal (fan-in), or N(0, conv_std) for the initialization study;
    BatchNorm/LayerNorm weights 1 and biases 0; every Linear N(0, 0.001); biases 0.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if conv_std is None:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.normal_(module.weight, mean=0.0, std=conv_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.001)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@torch.no_grad()
def feature_width(model: nn.Module, image_size: int, in_channels: int) -> int:
    """The width of Z measured by one forward pass (a check on the builders' numbers)."""
    model.eval()
    return model(torch.zeros(1, in_channels, image_size, image_size)).shape[-1]
