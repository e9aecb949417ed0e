"""The bare forward pass that netfloc is measured against: the same model, preprocessing, stimulus checks (without
the image statistics) and data loading as ``netfloc run``, no hooks, no statistics, nothing written.

    python benchmarks/bare_forward.py --model SPEC --stimuli DIR [--batch-size 32] [--workers 0] [--device cpu]
        [--pause-gc] [--memory-format contiguous|channels_last|auto] [--reuse-freed-memory]

``--pause-gc`` handles Python's garbage collector as the ``netfloc`` script does
(:func:`netfloc.cli.common.pause_garbage_collection`: no collections while torch & co. are imported, none at
exit), so that netfloc's overhead is measured against a process with the same settings; the modules are imported
inside :func:`main` for that reason, and the few lines are repeated here rather than imported from
``netfloc.cli.common``, which would add typer and rich to the bare forward's imports. ``--memory-format`` runs
the model and its batches in that memory format (default ``contiguous``, PyTorch's; ``auto`` chooses as
``netfloc run`` does, :func:`netfloc.recording.loader.resolve_memory_format`). ``--reuse-freed-memory`` runs the
pass as ``netfloc run`` does on the CPU: glibc keeps the activations' freed blocks for the next batch
(:func:`netfloc.recording.allocator.reuse_freed_memory`).
"""

from __future__ import annotations

import argparse
import atexit
import gc


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare forward pass of a model over a stimulus folder.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--stimuli", required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pause-gc", action="store_true", help="Garbage collection as the netfloc script has it.")
    parser.add_argument("--memory-format", default="contiguous", choices=("contiguous", "channels_last", "auto"))
    parser.add_argument("--reuse-freed-memory", action="store_true", help="glibc's allocator as netfloc sets it.")
    args = parser.parse_args()
    if args.pause_gc:
        gc.disable()
        atexit.register(gc.freeze)

    import torch
    from torch.utils.data import DataLoader

    from netfloc.models import load_model
    from netfloc.recording.allocator import reuse_freed_memory
    from netfloc.recording.loader import ImageDataset, memory_format_mode, resolve_memory_format, same_size_collate
    from netfloc.stimuli import load_stimulus_set

    if args.pause_gc:
        gc.freeze()
        gc.enable()
    model = load_model(args.model)
    stimuli = load_stimulus_set(args.stimuli, measure=False)  # the check; no image statistics
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    loader = DataLoader(
        ImageDataset(stimuli.items(), model),
        batch_size=args.batch_size,
        num_workers=args.workers,
        collate_fn=same_size_collate(model.name),
        pin_memory=on_gpu,
    )
    module = model.module.to(device)
    memory_format = resolve_memory_format(module, device, args.memory_format)
    with (
        torch.inference_mode(),
        memory_format_mode(module, memory_format) as arrange,
        reuse_freed_memory(args.reuse_freed_memory and not on_gpu),
    ):
        for images, _, _ in loader:
            module(arrange(images.to(device, non_blocking=on_gpu)))
    if on_gpu:
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
