"""The streaming image loader: one pass over the stimuli, one forward pass per batch, hooked layers out.

Nothing is kept between batches: :func:`stream_batches` yields preprocessed batches on the device, which the
moment accumulators consume inside the hooks (:mod:`netfloc.moments.stream`); :func:`stream_layers` yields
B×U copies per batch for passes that need the values themselves (lesions, selected units).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from netfloc.errors import NetflocError, first_line
from netfloc.models import LoadedModel
from netfloc.progress import track
from netfloc.recording.allocator import release_freed_memory, reuse_freed_memory
from netfloc.recording.hooks import LayerRecorder
from netfloc.recording.layouts import TokensName, UnitsName
from netfloc.stimuli import StimulusSet, read_image

_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")
MemoryFormatName = Literal["auto", "channels_last", "contiguous"]
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


class ImageDataset(Dataset):
    """(preprocessed image, category index, image index) for every stimulus, or for those at ``indices``."""

    def __init__(self, items: list[tuple[Path, int]], model: LoadedModel, indices: Sequence[int] | None = None) -> None:
        self.items = items
        self.model = model
        self.indices = range(len(items)) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, int]:
        index = self.indices[position]
        path, category = self.items[index]
        tensor = self.model.transform(read_image(path))
        if not isinstance(tensor, torch.Tensor):
            raise NetflocError(
                f"the preprocessing of model {self.model.name} returned {type(tensor).__name__} for {path}; "
                "a transform must return a C×H×W tensor"
            )
        return tensor, category, index


def default_workers(device: torch.device) -> int:
    """Image-decoding worker processes: none on the CPU (they would compete with the forward pass for cores),
    up to 8 on a GPU, where decoding is the bottleneck."""
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NetflocError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise NetflocError(f"--device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


@contextlib.contextmanager
def tf32_mode(allow: bool) -> Iterator[None]:
    """Within the context, CUDA matmuls and cuDNN convolutions use TF32 only if ``allow`` (PyTorch turns TF32
    on for cuDNN by default, which changes float32 results in the third decimal place on Ampere and newer)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def check_memory_format(name: str) -> None:
    """A one-line error unless ``name`` is ``auto`` or a key of :data:`MEMORY_FORMATS`."""
    if name not in ("auto", *MEMORY_FORMATS):
        raise NetflocError(f"--memory-format must be auto, channels_last or contiguous, not {name!r}")


def resolve_memory_format(module: nn.Module, device: torch.device | str, requested: str = "auto") -> str:
    """The memory format of the forward pass: ``requested``, or for ``auto`` ``channels_last`` on the CPU for a
    network with more ``Conv2d`` than ``Linear`` modules, else ``contiguous``.

    On the CPU, oneDNN runs convolutions 20–37% faster channels-last (ResNet-50, EfficientNet-Lite0, AlexNet;
    batches of 32 on 2 cores; ``benchmarks/``), while vision transformers and ConvNeXt (LayerNorm over
    channels, pointwise convolutions as ``Linear``) run 10–20% slower. On GPUs channels-last has not been
    measured here: ``auto`` keeps the default there. Float32 results differ between the formats by rounding only
    (other convolution algorithms).
    """
    check_memory_format(requested)
    if requested != "auto":
        return requested
    if torch.device(device).type != "cpu":
        return "contiguous"
    kinds = [type(layer) for layer in module.modules()]
    convolutional = sum(issubclass(kind, nn.Conv2d) for kind in kinds) > sum(
        issubclass(kind, nn.Linear) for kind in kinds
    )
    return "channels_last" if convolutional else "contiguous"


@contextlib.contextmanager
def memory_format_mode(module: nn.Module, memory_format: str) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Within the context, ``module``'s 4-D parameters and buffers are in ``memory_format`` (each one changed is
    put back as it was after); yields the function that puts a batch of images in it."""
    target = MEMORY_FORMATS[memory_format]
    changed: list[tuple[torch.Tensor, torch.memory_format]] = []
    try:
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.ndim == 4 and not tensor.is_contiguous(memory_format=target):
                channels_last = tensor.is_contiguous(memory_format=torch.channels_last)
                changed.append((tensor, torch.channels_last if channels_last else torch.contiguous_format))
                tensor.data = tensor.data.contiguous(memory_format=target)
        yield lambda batch: batch.contiguous(memory_format=target) if batch.ndim == 4 else batch
    finally:
        for tensor, was in changed:
            tensor.data = tensor.data.contiguous(memory_format=was)


def device_info(device: torch.device, allow_tf32: bool) -> dict[str, Any]:
    """What run.json records of the device: its name, CUDA and cuDNN versions and the TF32 setting."""
    info: dict[str, Any] = {"type": device.type, "name": "cpu", "cuda": None, "cudnn": None, "tf32": False}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["tf32"] = allow_tf32
    return info


def stream_batches(
    model: LoadedModel,
    stimuli: StimulusSet,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    progress: bool = True,
    description: str = "recording",
    images: Sequence[int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The preprocessed stimuli (or the ``images`` at these indices of ``stimuli.items()``) in batches on
    ``device`` (pinned and copied without waiting on a GPU), with their indices, under a progress bar."""
    on_gpu = torch.device(device).type == "cuda"
    loader = DataLoader(
        ImageDataset(stimuli.items(), model, images),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=same_size_collate(model.name),
        pin_memory=on_gpu,
    )
    batches = track(loader, f"{model.name}: {description}", total=len(loader), enabled=progress)
    while True:
        try:
            batch, _, indices = next(batches)
        except StopIteration:
            return
        except NetflocError as error:
            raise NetflocError(_worker_message(error)) from None
        yield batch.to(device, non_blocking=on_gpu), indices


def hooked_batches(
    model: LoadedModel,
    layers: dict[str, str],
    stimuli: StimulusSet,
    *,
    units: UnitsName = "element",
    tokens: TokensName = "all",
    allow_tf32: bool = False,
    memory_format: MemoryFormatName = "auto",
    device: torch.device | str = "cpu",
    sink: Callable[[str, torch.Tensor], None] | None = None,
    **batching: Any,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, LayerRecorder]]:
    """The batches of :func:`stream_batches` (``batching``: its keyword arguments), each with its indices and a
    truncating :class:`LayerRecorder` (handing outputs to ``sink`` if given) that is ready for
    :func:`forward`, with the model on ``device``, TF32 as asked and model and batches in ``memory_format``
    (:func:`resolve_memory_format`)."""
    module = model.module.to(device)
    chosen = resolve_memory_format(module, device, memory_format)
    with (
        LayerRecorder(module, layers, units, tokens, truncate=True, sink=sink) as recorder,
        tf32_mode(allow_tf32),
        memory_format_mode(module, chosen) as arrange,
        reuse_freed_memory(torch.device(device).type == "cpu"),
    ):
        for batch, indices in stream_batches(model, stimuli, device=device, **batching):
            yield arrange(batch), indices, recorder


def stream_layers(
    model: LoadedModel, layers: dict[str, str], stimuli: StimulusSet, **options: Any
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, LayerRecorder]]:
    """One pass over the stimuli (``options``: those of :func:`hooked_batches`): per batch, {layer: B×U copy on
    the device}, the images' indices and the recorder (whose ``shapes`` and ``layouts`` describe the layer
    outputs)."""
    with contextlib.closing(hooked_batches(model, layers, stimuli, **options)) as batches:
        for batch, indices, recorder in batches:
            yield forward(recorder, batch, model.name), indices, recorder


def probe_shapes(
    model: LoadedModel,
    layers: dict[str, str],
    stimuli: StimulusSet,
    units: UnitsName = "element",
    tokens: TokensName = "all",
    memory_format: str = "contiguous",
) -> dict[str, tuple[int, ...]]:
    """The channel-major output shapes of ``layers``, from the first stimulus alone in ``memory_format``, so that
    memory can be planned (and a model that cannot run on the stimuli refused) before the streaming pass. The
    memory the probe's forward freed is handed back before the pass starts."""
    image = ImageDataset(stimuli.items()[:1], model)[0][0].unsqueeze(0)
    with (
        memory_format_mode(model.module, memory_format) as arrange,
        LayerRecorder(model.module, layers, units, tokens) as recorder,
    ):
        forward(recorder, arrange(image), model.name)
    release_freed_memory()
    return dict(recorder.shapes)


def forward(recorder: LayerRecorder, images: torch.Tensor, model_name: str) -> dict[str, torch.Tensor]:
    """Record one batch; running out of memory, or a model that fails on the images, is a one-line error."""
    try:
        return recorder.record(images)
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise NetflocError(out_of_memory_message(model_name, images.shape[0], first_line(error))) from None
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        reason = first_line(error)
        if any(marker in reason.lower() for marker in _OUT_OF_MEMORY):
            raise NetflocError(out_of_memory_message(model_name, images.shape[0], reason)) from None
        raise NetflocError(
            f"model {model_name} failed on images of shape {tuple(images.shape)}: {reason}; check that the "
            "preprocessing gives the input the model expects"
        ) from None


def out_of_memory_message(model_name: str, batch_size: int, reason: str) -> str:
    smaller = max(1, batch_size // 2)
    return (
        f"model {model_name} ran out of memory on a batch of {batch_size} images ({reason}); try --batch-size "
        f"{smaller}, fewer layers, or --units channel"
    )


def same_size_collate(model_name: str) -> Callable[[list[tuple[torch.Tensor, int, int]]], Any]:
    """``default_collate``, with a one-line error when preprocessing left images of different sizes."""

    def collate(batch: list[tuple[torch.Tensor, int, int]]):
        sizes = sorted({tuple(tensor.shape) for tensor, _, _ in batch})
        if len(sizes) > 1:
            raise NetflocError(
                f"the preprocessing of model {model_name} gives images of different sizes ({sizes[0]} and "
                f"{sizes[-1]}); use a transform that resizes and crops every image to one size"
            )
        return default_collate(batch)

    return collate


def _worker_message(error: NetflocError) -> str:
    """The one-line message of an error raised in a DataLoader worker (which wraps it in a traceback)."""
    lines = str(error).strip().splitlines()
    return lines[-1].removeprefix("netfloc.errors.NetflocError: ") if len(lines) > 1 else str(error)
