"""Recording a pass shard by shard: each (model, image shard) is a unit of work whose moments are a file.

With a results folder, a pass over more images than ``shard_size`` is split into shards
(:mod:`netfloc.moments.shards`). Each finished shard is written to ``.OUT.partial/shards/<model>/<id>.npz``
before the next starts: a hidden folder beside ``--out``, so that a finished ``--out`` being replaced stays
intact until the new run is complete and an unfinished run never looks like a finished one. A run killed at
any point loses at most the shard in progress: ``--resume`` reads the finished shards (their manifests and
checksums must hold, else they are computed again) and records only the rest. The shards are merged by the
fixed-order tree, so a resumed run equals an uninterrupted one. When the run finishes, the shards are deleted,
or kept as ``OUT/shards/`` with ``--keep-shards``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfloc.errors import NetflocError
from netfloc.files import STAGING_MARK
from netfloc.models import LoadedModel
from netfloc.moments.groupings import Grouping
from netfloc.moments.shards import ShardMoments, TreeMerger, read_shard, shard_id, shard_ranges, write_shard
from netfloc.moments.stream import record_moments
from netfloc.results.run import SHARDS_DIR
from netfloc.stimuli import StimulusSet

#: Images per shard by default: minutes of CPU work for a ResNet-50, seconds on a GPU; the study's 864 fLoc
#: images are one shard (nothing is written for a single-shard pass).
DEFAULT_SHARD_SIZE = 1024


@dataclass
class ShardLedger:
    """How many shards a run computed and how many it reused from an interrupted run (for run.json)."""

    computed: int = 0
    reused: int = 0
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ShardPlan:
    """Where and how a model's passes are sharded."""

    folder: Path | None
    shard_size: int = DEFAULT_SHARD_SIZE
    resume: bool = False


def shard_copies(n_images: int, plan: ShardPlan) -> int:
    """How many sets of moments a sharded pass holds at its peak: the shard being recorded plus the partial
    merges of :class:`~netfloc.moments.shards.TreeMerger` (1 when the pass is not sharded)."""
    n_shards = len(shard_ranges(n_images, plan.shard_size)) if plan.folder is not None else 1
    return 1 if n_shards == 1 else n_shards.bit_length() + 1


def pass_identity(
    model: LoadedModel, stimuli: StimulusSet, layers: dict[str, str], groupings: dict[str, Grouping], stream: dict
) -> dict[str, Any]:
    """Everything that changes a shard's moments (module docstring of :mod:`netfloc.moments.shards`). TF32
    counts (its 10-bit products change a GPU's moments by ≈ 1e-3, relative); the device and the memory format do
    not (other kernels, float32 rounding only)."""
    return {
        "weights": model.weights.get("state_sha256"),
        "stimuli": stimuli.digest(),
        "layers": layers,
        "units": stream["units"],
        "tokens": stream["tokens"],
        "allow_tf32": bool(stream["allow_tf32"]),
        "groupings": {name: [grouping.n_groups, grouping.labels.tolist()] for name, grouping in groupings.items()},
    }


def shard_manifest(model: str, start: int, stop: int, shapes: dict, layouts: dict) -> dict[str, Any]:
    """What a shard's manifest records beside its counts and checksum (read back on resume)."""
    return {"model": model, "images": [start, stop], "shapes": shapes, "layouts": layouts}


def record_pass(
    model: LoadedModel,
    stimuli: StimulusSet,
    layers: dict[str, str],
    groupings: dict[str, Grouping],
    stream: dict[str, Any],
    plan: ShardPlan,
    ledger: ShardLedger,
    description: str = "recording",
) -> tuple[ShardMoments, dict[str, tuple[int, ...]], dict[str, str]]:
    """The merged moments of one pass, with shapes and layouts; shards are reused, computed and written as the
    plan says (module docstring)."""
    ranges = shard_ranges(stimuli.n_images, plan.shard_size)
    if plan.folder is None or len(ranges) == 1:
        return record_moments(model, layers, stimuli, groupings, description=description, **stream)
    identity = pass_identity(model, stimuli, layers, groupings, stream)
    mark_partial(plan.folder)
    merger, shapes, layouts = TreeMerger(), {}, {}
    for index, (start, stop) in enumerate(ranges):
        name = shard_id(identity, start, stop)
        ledger.names.append(name)
        found = read_shard(plan.folder, name) if plan.resume else None
        if found is not None:
            moments, manifest = found
            shapes = {layer: tuple(shape) for layer, shape in manifest["shapes"].items()}
            layouts = manifest["layouts"]
            ledger.reused += 1
        else:
            label = f"{description} shard {index + 1}/{len(ranges)}"
            moments, shapes, layouts = record_moments(
                model, layers, stimuli, groupings, description=label, images=range(start, stop), **stream
            )
            write_shard(plan.folder, name, moments, shard_manifest(model.name, start, stop, shapes, layouts))
            ledger.computed += 1
        merger.add(moments)
        del moments
    return merger.result(), shapes, layouts


def partial_folder(out: Path) -> Path:
    """The hidden folder beside ``out`` that holds an unfinished run's shards (``.OUT.partial``)."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.partial"


def open_partial(out: Path, force: bool, resume: bool) -> Path:
    """The unfinished-run folder of ``out`` (created when the first shard is written): an existing one is
    reused with ``resume`` or dropped with ``force``; otherwise it is a one-line error, since it holds work. One
    without any shard (a run that failed before its first shard) is dropped."""
    partial = partial_folder(out)
    if partial.exists() and not resume:
        if any((partial / SHARDS_DIR).rglob("*.npz")) and not force:
            raise NetflocError(
                f"an unfinished run of {out} exists ({partial}); pass --resume to continue it or --force to start over"
            )
        shutil.rmtree(partial)
    return partial


def mark_partial(folder: Path) -> None:
    """Create a model's shard folder inside the unfinished-run folder, marked as never being a result."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder.parent.parent
    (partial / STAGING_MARK).write_text(json.dumps({"unfinished run of": partial.name}))


def close_partial(partial: Path, staging: Path, keep_shards: bool) -> None:
    """Move the shards into the finished results folder (``keep_shards``) or drop them, then the folder (if
    the run wrote any)."""
    if keep_shards and (partial / SHARDS_DIR).is_dir():
        (partial / SHARDS_DIR).rename(staging / SHARDS_DIR)
    shutil.rmtree(partial, ignore_errors=True)
