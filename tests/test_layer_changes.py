"""What each fine-tune changed per layer and component, against numpy on the same safetensors files."""

from __future__ import annotations

import json
import shutil
from itertools import combinations

import numpy as np
import pytest
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file, save_file

from tui_merge.cli import main
from tui_merge.engine.control import MergeControl
from tui_merge.models.changes import MeasureStopped, measure_changes
from tui_merge.models.info import load_model_info
from tui_merge.models.layout import classify_tensor

GROUPS = {"attn": "attention", "mlp": "mlp", "norm": "norm"}


def expected_figures(reference, others):
    """Relative changes and cosines by (layer, component), computed with numpy from the files."""
    weights = [load_numpy(str(folder / "model.safetensors")) for folder in (reference, *others)]
    groups: dict = {}
    for name, base in weights[0].items():
        if not np.issubdtype(base.dtype, np.floating):
            continue
        role = classify_tensor(name)
        groups.setdefault((role.layer, GROUPS.get(role.component, "other")), []).append(name)
    changes, cosines = {}, {}
    for key, names in groups.items():
        flat = [np.concatenate([w[name].astype(np.float64).ravel() for name in names]) for w in weights]
        deltas = [model - flat[0] for model in flat[1:]]
        for index, delta in enumerate(deltas):
            changes[(index, *key)] = np.linalg.norm(delta) / np.linalg.norm(flat[0])
        for first, second in combinations(range(len(deltas)), 2):
            scale = np.linalg.norm(deltas[first]) * np.linalg.norm(deltas[second])
            cosines[(first, second, *key)] = None if scale == 0 else float(deltas[first] @ deltas[second] / scale)
    return changes, cosines


@pytest.fixture()
def one_layer_tune(tmp_path, llama_base):
    """A fine-tune that changed only layer 1's attention."""
    folder = tmp_path / "one-layer"
    shutil.copytree(llama_base, folder)
    weights = load_file(folder / "model.safetensors")
    for name in weights:
        if ".layers.1.self_attn." in name:
            weights[name] = weights[name] * 1.1
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_figures_equal_an_independent_computation(llama_base, llama_finetune, one_layer_tune) -> None:
    infos = [(str(path), load_model_info(str(path))) for path in (llama_base, llama_finetune, one_layer_tune)]
    report = measure_changes(infos, cache=False)
    changes, cosines = expected_figures(llama_base, [llama_finetune, one_layer_tune])
    names = [str(llama_finetune), str(one_layer_tune)]
    assert len(report.changes) == len(changes) and len(report.pairs) == len(cosines)
    for (index, layer, component), value in changes.items():
        assert report.change(names[index], layer, component) == pytest.approx(value, rel=1e-9, abs=1e-12)
    for (first, second, layer, component), value in cosines.items():
        measured = report.cosine(names[first], names[second], layer, component)
        assert (measured is None) if value is None else measured == pytest.approx(value, rel=1e-9, abs=1e-12)
    # the one-layer tune: 10% of layer 1's attention, nothing anywhere else
    assert report.change(names[1], 1, "attention") == pytest.approx(0.1, rel=1e-6)
    assert report.change(names[1], 0, "attention") == 0 and report.change(names[1], 1, "mlp") == 0
    assert report.cosine(names[0], names[1], 0, "mlp") is None  # one task vector is zero there


def test_figures_are_cached_by_file_identity_and_measured_again_when_a_file_changes(
    tmp_path, llama_base, llama_finetune, private_cache
) -> None:
    tune = tmp_path / "tune"
    shutil.copytree(llama_finetune, tune)
    infos = [("b", load_model_info(str(llama_base))), ("t", load_model_info(str(tune)))]
    first = measure_changes(infos)
    assert len(list((private_cache / "layer-changes").glob("*.json"))) == 1
    calls = []
    again = measure_changes(infos, on_progress=lambda done, total: calls.append(done))
    assert calls == [] and again == first  # from the cache: nothing read
    weights = load_file(tune / "model.safetensors")
    save_file({name: tensor * 2 for name, tensor in weights.items()}, tune / "model.safetensors")
    changed = measure_changes([infos[0], ("t", load_model_info(str(tune)))])
    assert changed != first


def test_a_stopped_measurement_raises_and_caches_nothing(llama_base, llama_finetune, private_cache) -> None:
    control = MergeControl()
    control.stop()
    infos = [("b", load_model_info(str(llama_base))), ("t", load_model_info(str(llama_finetune)))]
    with pytest.raises(MeasureStopped):
        measure_changes(infos, checkpoint=control.checkpoint)
    assert not list(private_cache.rglob("*.json"))


def test_inspect_layers_prints_a_table_and_adds_the_figures_to_the_json(
    capsys, monkeypatch, tmp_path, llama_base, llama_finetune, one_layer_tune
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(llama_base, tmp_path / "base")
    shutil.copytree(one_layer_tune, tmp_path / "tune")
    shutil.copytree(llama_finetune, tmp_path / "chat")
    assert main(["inspect", "--layers", "base", "chat", "tune"]) == 0
    out = capsys.readouterr().out
    assert "Relative change of chat from base" in out and "Cosine between the task vectors of chat and tune" in out
    assert main(["inspect", "--layers", "--json", "base", "chat", "tune"]) == 0
    data = json.loads(capsys.readouterr().out)
    changes, cosines = expected_figures(tmp_path / "base", [tmp_path / "chat", tmp_path / "tune"])
    names = ["chat", "tune"]
    assert {(row["model"], row["layer"], row["component"]) for row in data["layers"]} == {
        (names[index], layer, component) for index, layer, component in changes
    }
    for row in data["layers"]:
        index = names.index(row["model"])
        assert row["relative_change"] == pytest.approx(changes[(index, row["layer"], row["component"])], abs=1e-12)
    for row in data["pairs"]:
        assert row["models"] == ["chat", "tune"]
        value = cosines[(0, 1, row["layer"], row["component"])]
        assert row["cosine"] is None if value is None else row["cosine"] == pytest.approx(value, abs=1e-12)
    assert {row["component"] for row in data["layers"]} <= {"attention", "mlp", "norm", "other"}
