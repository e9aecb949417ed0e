"""The on-disk contract: exact columns, npz keys and dtypes, run.json against its JSON Schema, and a real
save -> load round trip against the in-memory result."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from netfloc import LocalizerResult, localize
from netfloc.analysis.consistency import CONSISTENCY_COLUMNS, CONSISTENCY_SUMMARY_COLUMNS
from netfloc.analysis.controls import NULL_SUMMARY_COLUMNS
from netfloc.errors import NetflocError
from netfloc.results.run import SUMMARY_COLUMNS, run_schema

from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"
MODEL = "planted_model-build"
NPZ_DTYPES = {
    "categories": "U",
    "count": "i",
    "shape": "i",
    "units": "U",
    "mean": np.float32,
    "std": np.float32,
    "t_min": np.float32,
    "q_max": np.float64,
    "selective": np.bool_,
    "csi": np.float32,
    "dprime": np.float32,
    "preferred": np.int16,
    "anova_f": np.float32,
    "anova_p": np.float64,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[LocalizerResult, Path]:
    root = tmp_path_factory.mktemp("contract")
    stimuli = write_planted_stimuli(root / "stimuli", per_category=9)
    out = root / "run"
    result = localize(
        SPEC,
        stimuli,
        layers=["patches", "units"],
        categories=CATEGORIES,
        cross_validate=3,
        null=3,
        consistency=True,
        batch_size=7,
        out=out,
        progress=False,
    )
    return result, out


def test_every_table_has_exactly_its_columns(saved):
    _, out = saved
    expected = {
        "selectivity": SUMMARY_COLUMNS,
        "crossval": ["model", "layer", "category", "measure", "value"],
        "null": ["model", "layer", "category", "permutation", "n_units", "n_selective", "proportion"],
        "null_summary": NULL_SUMMARY_COLUMNS,
        "consistency": CONSISTENCY_COLUMNS,
        "consistency_summary": CONSISTENCY_SUMMARY_COLUMNS,
    }
    for name, columns in expected.items():
        assert list(pd.read_csv(out / f"{name}.csv").columns) == columns, name
    assert NULL_SUMMARY_COLUMNS == [
        "model",
        "layer",
        "n_permutations",
        "familywise_rate",
        "familywise_ci_high",
        "null_proportion_mean",
        "alpha",
        "exceeds_alpha",
    ]


def test_npz_keys_dtypes_and_counts_agree_with_the_summary(saved):
    _, out = saved
    summary = pd.read_csv(out / "selectivity.csv")
    for layer in ("patches", "units"):
        with np.load(out / "units" / MODEL / f"{layer}.npz", allow_pickle=False) as data:
            assert set(NPZ_DTYPES) <= set(data)
            for key, dtype in NPZ_DTYPES.items():
                if isinstance(dtype, str):
                    assert data[key].dtype.kind == dtype, key
                else:
                    assert data[key].dtype == dtype, key
            rows = summary[summary.layer == layer].set_index("category")
            sums = data["selective"].sum(axis=1)
            assert rows.loc[list(CATEGORIES), "n_selective"].tolist() == sums.tolist()
            n_units = data["mean"].shape[1]
            assert (rows["n_units"] == n_units).all()


def test_statistics_of_categories_without_selective_units_are_empty_cells(saved, tmp_path):
    result, _ = saved
    layer = result.layer(MODEL, "units")
    silent = replace(layer, selective=np.zeros_like(layer.selective))
    LocalizerResult([silent], result.run_info).save(tmp_path / "silent")
    lines = (tmp_path / "silent" / "selectivity.csv").read_text().splitlines()
    assert lines[0] == ",".join(SUMMARY_COLUMNS)
    assert all(line.endswith(",516,0,0.0,,,") for line in lines[1:]), lines[1:]


def test_run_json_is_valid_against_the_shipped_schema(saved):
    _, out = saved
    info = json.loads((out / "run.json").read_text())
    jsonschema.validate(info, run_schema())
    assert info["schema_version"] == 2
    assert info["models"][0]["layers"]["patches"]["layout"] == "NCHW"
    assert info["models"][0]["layers"]["units"]["layout"] == "NC"
    assert info["device"] == {"type": "cpu", "name": "cpu", "cuda": None, "cudnn": None, "tf32": False}
    broken = dict(info, models=[dict(info["models"][0], name="../elsewhere")])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, run_schema())


def test_save_then_load_is_a_round_trip(saved):
    result, out = saved
    loaded = LocalizerResult.load(out)
    assert loaded.run_info == json.loads(json.dumps(result.run_info))
    pd.testing.assert_frame_equal(loaded.summary, result.summary)
    assert [(layer.model, layer.layer) for layer in loaded.layers] == [(m.model, m.layer) for m in result.layers]
    for original, read in zip(result.layers, loaded.layers, strict=True):
        assert read.categories == original.categories and read.shape == original.shape
        np.testing.assert_array_equal(read.selective, original.selective)
        np.testing.assert_array_equal(read.count, original.count)
        np.testing.assert_array_equal(read.q_max, original.q_max)
        for key in ("mean", "std", "t_min", "csi", "dprime", "anova_f"):
            np.testing.assert_allclose(getattr(read, key), getattr(original, key), rtol=1e-6, atol=1e-6)
    assert set(loaded.tables) == set(result.tables)
    for name, table in result.tables.items():
        pd.testing.assert_frame_equal(loaded.tables[name], table, check_dtype=False, atol=1e-12)


def test_a_layer_file_that_disagrees_with_run_json_is_refused(saved, tmp_path):
    import shutil

    _, out = saved
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    patches, units = (copy / "units" / MODEL / f"{layer}.npz" for layer in ("patches", "units"))
    patches.write_bytes(units.read_bytes())
    with pytest.raises(NetflocError, match="holds 'units'") as error:
        LocalizerResult.load(copy)
    assert "\n" not in str(error.value)
