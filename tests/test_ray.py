"""The Ray executor on a local Ray instance and on a simulated two-node cluster (traffic on 127.0.0.1 only)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from netfloc import localize

from .planted_model import CATEGORIES, write_planted_stimuli

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'netfloc[ray]')")

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"
FLAKY_MODEL = """
import os
import sys
sys.path.insert(0, {tests!r})
from planted_model import build as planted


def build():
    index = 1
    while True:  # claim the next load number atomically (O_EXCL), across processes
        try:
            os.close(os.open(os.path.join({folder!r}, f"load-{{index}}"), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            index += 1
    if index == 2:  # the driver's load is 1; the first worker's fails once
        raise RuntimeError("a transient failure")
    return planted()
"""
SLOW_MODEL = """
import sys
import time
sys.path.insert(0, {tests!r})
import planted_model


class Slow(planted_model.PlantedModel):
    def forward(self, x):
        time.sleep(0.3)
        return super().forward(x)


def build():
    return Slow(), planted_model.build()[1]
"""
COMMON = {"layers": ["units"], "categories": CATEGORIES, "null": 2, "progress": False}


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> Path:
    return write_planted_stimuli(tmp_path_factory.mktemp("ray") / "stimuli", per_category=8)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_executor_equals_the_local_executor(local_ray, stimuli, tmp_path):
    local = localize(SPEC, stimuli, out=tmp_path / "local", shard_size=8, **COMMON)
    distributed = localize(SPEC, stimuli, out=tmp_path / "ray", shard_size=8, executor="ray", **COMMON)
    assert distributed.run_info["models"][0]["shards"] == {"computed": 4, "reused": 0}
    np.testing.assert_array_equal(distributed.layers[0].selective, local.layers[0].selective)
    np.testing.assert_array_equal(distributed.layers[0].t_min, local.layers[0].t_min)
    pd.testing.assert_frame_equal(distributed.tables["null"], local.tables["null"])
    assert not (tmp_path / ".ray.partial").exists()


def test_a_task_that_fails_once_is_retried(local_ray, stimuli, tmp_path):
    model = tmp_path / "flaky.py"
    model.write_text(FLAKY_MODEL.format(tests=str(Path(__file__).parent), folder=str(tmp_path)))
    result = localize(f"flaky={model}:build", stimuli, out=tmp_path / "run", shard_size=16, executor="ray", **COMMON)
    loads = sorted(int(path.name.split("-")[1]) for path in tmp_path.glob("load-*"))
    assert loads == [1, 2, 3, 4], "driver, a failed worker load, the other shard, the retry"
    assert result.layers[0].selective[:, :4].trace() == 4


def test_losing_a_worker_node_still_completes(stimuli, tmp_path):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    model = tmp_path / "slow.py"
    model.write_text(SLOW_MODEL.format(tests=str(Path(__file__).parent)))
    outcome = {}

    def run():
        outcome["result"] = localize(
            f"slow={model}:build", stimuli, out=tmp_path / "run", shard_size=4, executor="ray",
            address=cluster.address, batch_size=2, **COMMON,
        )  # fmt: skip

    try:
        worker = threading.Thread(target=run)
        worker.start()
        shards = tmp_path / ".run.partial" / "shards" / "slow"
        deadline = time.monotonic() + 120
        while not list(shards.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        cluster.remove_node(doomed)
        worker.join(timeout=300)
        assert "result" in outcome, "the run completed on the remaining node"
        assert outcome["result"].run_info["models"][0]["shards"]["computed"] == 8
    finally:
        ray.shutdown()
        cluster.shutdown()
