"""The Ray executor (``--executor ray``): each (model, image shard) is a Ray Core task, and so is each merge.

Only file paths and small manifests travel through Ray's object store: a task loads the model and the
stimulus folder itself (both checked against the driver's weights hash and stimulus digest), records its
shard and writes the moments under ``.OUT.partial/shards/<model>/`` — storage every worker must share, which
the first task on each node checks (a probe file the driver wrote). Merges are Ray tasks over the same files,
pairwise in the fixed order of :func:`netfloc.moments.shards.merge_tree`, so results do not depend on where or
when shards finished. Tasks that fail (an exception, a worker or node lost) are retried ``--max-retries``
times; a killed driver is resumed with ``--resume`` (finished shards are files). At most ``2 × CPUs`` tasks of
a pass are in flight at once.

``--address`` (default ``$RAY_ADDRESS``, else a local Ray instance started here) chooses the cluster;
``--gpus-per-task`` (fractions allowed) requests GPUs for shard tasks, which then record on ``cuda``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netfloc.errors import NetflocError
from netfloc.models import LoadedModel
from netfloc.moments.groupings import Grouping
from netfloc.moments.shards import ShardMoments, merge_tree, read_shard, shard_id, shard_ranges, write_shard
from netfloc.pipeline.shards import ShardLedger, ShardPlan, mark_partial, pass_identity, shard_manifest
from netfloc.stimuli import StimulusSet

PROBE = ".netfloc-shared-storage"


@dataclass(frozen=True)
class RayOptions:
    """Where and how shard tasks run."""

    address: str | None = None
    gpus_per_task: float = 0.0
    max_retries: int = 3

    @property
    def device(self) -> str:
        """The device every shard task records on."""
        return "cuda" if self.gpus_per_task > 0 else "cpu"


def start_ray(options: RayOptions) -> Any:
    """The ``ray`` module, connected to ``--address`` / ``$RAY_ADDRESS`` or to a local instance started here."""
    try:
        import ray
    except ImportError:
        raise NetflocError("--executor ray needs Ray: pip install 'netfloc[ray]'") from None
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


def _shard_task(job: dict[str, Any], start: int, stop: int, name: str) -> str:
    """Record one shard in a Ray worker and write it; returns the shard's name."""
    from netfloc.models import load_model
    from netfloc.moments.stream import record_moments
    from netfloc.stimuli import load_stimulus_set

    folder = Path(job["folder"])
    if not (folder.parent.parent / PROBE).is_file():
        raise NetflocError(
            f"{folder} is not visible from node {socket.gethostname()}; --out must be on storage every Ray worker "
            "shares (NFS, Lustre, a mounted bucket)"
        )
    stimuli = load_stimulus_set(job["stimuli_root"], job["categories"], skip_bad=job["skip_bad"], measure=False)
    if stimuli.digest() != job["stimuli_digest"]:
        raise NetflocError(f"the stimuli at {job['stimuli_root']} differ on node {socket.gethostname()}")
    model = load_model(job["spec"], seed=job["seed"])
    if model.weights.get("state_sha256") != job["weights"]:
        raise NetflocError(f"model {job['spec']} loads other weights on node {socket.gethostname()}")
    groupings = {key: Grouping(labels, n) for key, (labels, n) in job["groupings"].items()}
    moments, shapes, layouts = record_moments(
        model, job["layers"], stimuli, groupings, images=range(start, stop), **job["stream"]
    )
    write_shard(folder, name, moments, shard_manifest(model.name, start, stop, shapes, layouts))
    return name


def _merge_task(folder: str, first: str, second: str, name: str) -> str:
    """Merge two shard files (or earlier merges) into ``name``; returns it."""
    moments_a, manifest = read_shard(Path(folder), first)
    moments_b, _ = read_shard(Path(folder), second)
    write_shard(Path(folder), name, merge_tree([moments_a, moments_b]), {k: manifest[k] for k in ("shapes", "layouts")})
    return name


def record_pass_ray(
    ray: Any,
    options: RayOptions,
    model: LoadedModel,
    stimuli: StimulusSet,
    layers: dict[str, str],
    groupings: dict[str, Grouping],
    stream: dict[str, Any],
    plan: ShardPlan,
    ledger: ShardLedger,
) -> tuple[ShardMoments, dict[str, tuple[int, ...]], dict[str, str]]:
    """One pass of one model as Ray tasks (module docstring): shards, then the merge tree; returns the merged
    moments with shapes and layouts."""
    if plan.folder is None:
        raise NetflocError("--executor ray needs --out: the shards are files on storage the workers share")
    mark_partial(plan.folder)
    (plan.folder.parent.parent / PROBE).write_text(socket.gethostname())
    identity = pass_identity(model, stimuli, layers, groupings, stream)
    ranges = {shard_id(identity, *bounds): bounds for bounds in shard_ranges(stimuli.n_images, plan.shard_size)}
    names = list(ranges)
    missing = [name for name in names if not (plan.resume and read_shard(plan.folder, name) is not None)]
    ledger.reused += len(names) - len(missing)
    ledger.computed += len(missing)
    ledger.names += names
    job = {
        "folder": str(plan.folder),
        "stimuli_root": str(stimuli.root),
        "categories": list(stimuli.categories),
        "skip_bad": bool(stimuli.skipped),
        "stimuli_digest": stimuli.digest(),
        "spec": model.spec,
        "seed": stream.pop("seed"),
        "weights": model.weights.get("state_sha256"),
        "layers": layers,
        "groupings": {key: (grouping.labels, grouping.n_groups) for key, grouping in groupings.items()},
        "stream": {**stream, "device": options.device, "progress": False},
    }
    task = ray.remote(_shard_task).options(
        num_gpus=options.gpus_per_task, max_retries=options.max_retries, retry_exceptions=True
    )
    job_ref = ray.put(job)
    limit = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: list[Any] = []
    for name in missing:
        if len(pending) >= limit:
            _, pending = ray.wait(pending, num_returns=1)
        pending.append(task.remote(job_ref, *ranges[name], name))
    _finish(ray, pending)
    final = _merge_in_tree(ray, options, str(plan.folder), names)
    moments, manifest = read_shard(plan.folder, final)
    return moments, {layer: tuple(shape) for layer, shape in manifest["shapes"].items()}, manifest["layouts"]


def _merge_in_tree(ray: Any, options: RayOptions, folder: str, names: list[str]) -> str:
    """Pairwise merges as Ray tasks, level by level in shard order; returns the final file's name."""
    merge = ray.remote(_merge_task).options(max_retries=options.max_retries, retry_exceptions=True)
    level, depth = list(names), 0
    while len(level) > 1:
        refs = [
            merge.remote(folder, level[i], level[i + 1], f"merge-{depth}-{i // 2}-{level[i]}")
            if i + 1 < len(level)
            else level[i]
            for i in range(0, len(level), 2)
        ]
        level = [ref if isinstance(ref, str) else ray.get(ref) for ref in refs]
        depth += 1
    return level[0]


def _finish(ray: Any, pending: list[Any]) -> None:
    """Wait for every task; a task that failed after its retries is a one-line error."""
    try:
        ray.get(pending)
    except Exception as error:
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, NetflocError):
            raise NetflocError(str(cause)) from None
        first = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        raise NetflocError(f"a Ray shard task failed after its retries: {first}") from None
