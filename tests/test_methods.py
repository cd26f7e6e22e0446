"""Each merge kernel against an independent formula written here in NumPy, plus algebraic properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference_math import numpy_slerp

from tui_merge.errors import BadInputError
from tui_merge.methods.circuit import calculate_p
from tui_merge.methods.inputs import MergeInputs
from tui_merge.methods.registry import METHODS, REGISTRY, get_method

RNG = np.random.default_rng(1234)
BASE = RNG.normal(size=(6, 10)).astype(np.float32)
MODELS = [BASE + RNG.normal(scale=0.3, size=BASE.shape).astype(np.float32) for _ in range(3)]


def defaults(method: str, scope: str) -> dict:
    return {p.name: p.default for p in get_method(method).params if p.scope == scope and p.default is not None}


def run(method: str, models, base=None, per_model=None, seed: int = 7, **options) -> np.ndarray:
    """Run a kernel on NumPy arrays with registry defaults plus the given parameters."""
    per_model = per_model or [{} for _ in models]
    inputs = MergeInputs(
        tensors=[torch.from_numpy(np.array(model, dtype=np.float32)) for model in models],
        params=[defaults(method, "model") | params for params in per_model],
        base=None if base is None else torch.from_numpy(np.array(base, dtype=np.float32)),
        options=defaults(method, "global") | options,
        generator=torch.Generator().manual_seed(seed),
    )
    return get_method(method).load_kernel()(inputs).numpy()


def uniform_draws(shape, seed: int = 7, count: int = 1) -> list[np.ndarray]:
    """The uniform numbers a seeded kernel draws, in order: one array per model.

    Each 64-bit word of the generator is four draws: its 16-bit quarters k in memory order, as
    (k + 32768) / 65536 with k read as a signed 16-bit integer; a model's draws start on a new word.
    """
    generator = torch.Generator().manual_seed(seed)
    size = int(np.prod(shape))
    result = []
    for _ in range(count):
        words = torch.randint(-(2**63), 2**63 - 1, ((size + 3) // 4,), dtype=torch.int64, generator=generator)
        quarters = words.numpy().astype("<i8").view("<i2")[:size].astype(np.float64)
        result.append(((quarters + 32768) / 65536).reshape(shape))
    return result


def close(actual, expected, tol=1e-5) -> None:
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


# --- linear and spherical -------------------------------------------------------------------


def test_linear_is_the_normalized_weighted_average() -> None:
    weights = [0.2, 0.5, 1.3]
    expected = sum(w * m for w, m in zip(weights, MODELS)) / sum(weights)

    close(run("linear", MODELS, per_model=[{"weight": w} for w in weights]), expected)
    close(run("linear", MODELS, per_model=[{"weight": w} for w in weights], normalize=False), expected * sum(weights))


def test_linear_with_weights_one_zero_returns_the_first_model() -> None:
    close(run("linear", MODELS[:2], per_model=[{"weight": 1.0}, {"weight": 0.0}]), MODELS[0], tol=0)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
def test_slerp_follows_the_great_circle(t: float) -> None:
    other = RNG.normal(size=BASE.shape).astype(np.float32)  # far from colinear

    result = run("slerp", [other], base=BASE, t=t)

    close(result, numpy_slerp(t, BASE, other))
    if t in (0.0, 1.0):
        close(result, BASE if t == 0 else other)


def test_slerp_of_nearly_colinear_tensors_is_linear() -> None:
    near = BASE * 1.001

    close(run("slerp", [near], base=BASE, t=0.25), 0.75 * BASE + 0.25 * near)


def test_slerp_keeps_the_norm_between_equal_norm_ends() -> None:
    other = RNG.normal(size=BASE.shape).astype(np.float32)
    other *= np.linalg.norm(BASE) / np.linalg.norm(other)

    assert np.linalg.norm(run("slerp", [other], base=BASE, t=0.5)) == pytest.approx(np.linalg.norm(BASE), rel=1e-5)


def test_nuslerp_row_vectors_and_task_vectors() -> None:
    a, b = MODELS[0], MODELS[1]
    weights = [{"weight": 1.0}, {"weight": 3.0}]
    rows = np.stack([numpy_slerp(0.75, a[i], b[i]) for i in range(a.shape[0])])
    flat = numpy_slerp(0.75, a - BASE, b - BASE) + BASE

    close(run("nuslerp", [a, b], per_model=weights, nuslerp_flatten=False), rows, tol=1e-4)
    close(run("nuslerp", [a, b], base=BASE, per_model=weights), flat, tol=1e-4)


def test_multislerp_of_two_equal_norm_vectors_is_slerp_at_their_weight() -> None:
    a = RNG.normal(size=(40,)).astype(np.float32)
    b = RNG.normal(size=(40,)).astype(np.float32)
    b *= np.linalg.norm(a) / np.linalg.norm(b)

    result = run("multislerp", [a, b], per_model=[{"weight": 0.5}, {"weight": 0.5}])

    close(result, numpy_slerp(0.5, a, b), tol=1e-4)


def test_karcher_mean_of_two_is_the_slerp_midpoint_scaled_by_the_mean_norm() -> None:
    a = RNG.normal(size=(30,)).astype(np.float32)
    b = RNG.normal(size=(30,)).astype(np.float32) * 2
    unit_a, unit_b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    expected = numpy_slerp(0.5, unit_a, unit_b) * (np.linalg.norm(a) + np.linalg.norm(b)) / 2

    close(run("karcher", [a, b], max_iter=50, tol=1e-9), expected, tol=1e-4)


@pytest.mark.parametrize("method", ["linear", "karcher", "multislerp"])
def test_merging_a_model_with_itself_returns_it(method: str) -> None:
    close(run(method, [MODELS[0], MODELS[0]]), MODELS[0], tol=1e-5)


# --- task arithmetic family -----------------------------------------------------------------


def numpy_task_arithmetic(deltas, weights, lam=1.0, normalize=False, elect=False) -> np.ndarray:
    weighted = [w * d for w, d in zip(weights, deltas)]
    if elect:
        total = sum(weighted)
        sign = np.where(total >= 0, 1.0, -1.0)
        agree = [np.sign(x) == sign for x in weighted]
        mixed = sum(x * a for x, a in zip(weighted, agree))
        divisor = sum(w * a for w, a in zip(weights, agree))
        divisor = np.where(divisor == 0, 1.0, divisor)
    else:
        mixed = sum(weighted)
        divisor = sum(weights)
    return BASE + lam * (mixed / divisor if normalize else mixed)


def top_fraction(delta: np.ndarray, density: float) -> np.ndarray:
    keep = int(density * delta.size)
    threshold = np.sort(np.abs(delta).ravel())[::-1][keep - 1]
    return np.where(np.abs(delta) >= threshold, delta, 0.0)


def test_task_arithmetic_adds_scaled_task_vectors() -> None:
    weights = [0.5, 1.0, -0.25]
    deltas = [m - BASE for m in MODELS]

    result = run("task_arithmetic", MODELS, base=BASE, per_model=[{"weight": w} for w in weights], **{"lambda": 0.8})

    close(result, numpy_task_arithmetic(deltas, weights, lam=0.8))


def test_ties_trims_elects_and_averages_agreeing_values() -> None:
    weights, densities = [1.0, 0.6, 0.9], [0.5, 0.3, 0.7]
    deltas = [top_fraction(m - BASE, d) for m, d in zip(MODELS, densities)]
    per_model = [{"weight": w, "density": d} for w, d in zip(weights, densities)]

    close(
        run("ties", MODELS, base=BASE, per_model=per_model),
        numpy_task_arithmetic(deltas, weights, normalize=True, elect=True),
    )


def test_sign_election_of_a_large_tensor_in_parts_on_threads_matches_the_formula_and_one_part(monkeypatch) -> None:
    from tui_merge.methods import pool, task_arithmetic

    rng = np.random.default_rng(5)
    base = rng.normal(size=(301, 257)).astype(np.float32)  # 77,357 values: parts of unequal length
    models = [base + rng.normal(scale=0.1, size=base.shape).astype(np.float32) for _ in range(3)]
    models[1][:5] = base[:5]  # a task vector's zeros agree with neither sign
    weights = [1.0, 0.5, -0.25]
    per_model = [{"weight": w, "density": 1.0} for w in weights]
    assert base.size >= task_arithmetic.PARALLEL_VALUES
    monkeypatch.setattr(pool, "POOL_THREADS", 3)

    in_parts = run("dare_ties", models, base=base, per_model=per_model, normalize=True)

    weighted = [w * (m.astype(np.float64) - base) for w, m in zip(weights, models)]
    sign = np.where(sum(weighted) >= 0, 1.0, -1.0)
    agree = [np.sign(x) == sign for x in weighted]
    divisor = sum(w * a for w, a in zip(weights, agree))
    expected = base + sum(x * a for x, a in zip(weighted, agree)) / np.where(divisor == 0, 1.0, divisor)
    close(in_parts, expected)
    monkeypatch.setattr(task_arithmetic, "PARALLEL_VALUES", base.size + 1)
    assert run("dare_ties", models, base=base, per_model=per_model, normalize=True).tobytes() == in_parts.tobytes()


def test_ties_with_one_model_and_full_density_is_task_arithmetic() -> None:
    per_model = [{"weight": 0.7, "density": 1.0}]

    close(
        run("ties", MODELS[:1], base=BASE, per_model=per_model, normalize=False),
        run("task_arithmetic", MODELS[:1], base=BASE, per_model=[{"weight": 0.7}]),
    )
    close(run("ties", MODELS[:1], base=BASE, per_model=per_model, normalize=False), BASE + 0.7 * (MODELS[0] - BASE))


def test_dare_drops_at_random_and_rescales() -> None:
    densities = [0.4, 0.6, 0.8]
    draws = uniform_draws(BASE.shape, count=3)
    kept = [np.where(u < d, m - BASE, 0.0) for m, d, u in zip(MODELS, densities, draws)]
    # mergekit's rescale: each task vector's kept values are scaled back to its L1 norm.
    deltas = [k * (np.abs(m - BASE).sum() / np.abs(k).sum()) for m, k in zip(MODELS, kept)]
    per_model = [{"weight": 1.0, "density": d} for d in densities]

    close(run("dare_linear", MODELS, base=BASE, per_model=per_model), numpy_task_arithmetic(deltas, [1.0] * 3))
    close(
        run("dare_ties", MODELS, base=BASE, per_model=per_model), numpy_task_arithmetic(deltas, [1.0] * 3, elect=True)
    )


def test_dare_keeps_the_expected_task_vector() -> None:
    big_base = np.zeros((400, 400), dtype=np.float32)
    model = np.full_like(big_base, 2.0)

    result = run("dare_linear", [model], base=big_base, per_model=[{"weight": 1.0, "density": 0.1}])

    assert np.mean(result != 0) == pytest.approx(0.1, abs=0.01)
    assert result.mean() == pytest.approx(2.0, rel=0.05)


def test_breadcrumbs_drops_the_largest_and_smallest() -> None:
    delta = MODELS[0] - BASE
    order = np.argsort(np.abs(delta).ravel(), kind="stable")
    n = delta.size  # 60: density 0.5 keeps 30, gamma 0.1 drops the 6 largest and so the 24 smallest
    keep = np.zeros(n, dtype=bool)
    keep[order[24:54]] = True
    expected = BASE + np.where(keep.reshape(delta.shape), delta, 0.0)

    result = run("breadcrumbs", MODELS[:1], base=BASE, per_model=[{"weight": 1.0, "density": 0.5, "gamma": 0.1}])

    close(result, expected)
    kept = expected - BASE
    rescaled = BASE + kept * (np.abs(delta).sum() / np.abs(kept).sum())  # back to the task vector's L1 norm
    per_model = [{"weight": 1.0, "density": 0.5, "gamma": 0.1}]
    close(run("breadcrumbs", MODELS[:1], base=BASE, per_model=per_model, rescale=True), rescaled)


def test_della_keep_probabilities_follow_magnitude_rank_per_row() -> None:
    delta = MODELS[0] - BASE
    density, epsilon = 0.5, 0.2
    ranks = np.argsort(np.argsort(np.abs(delta), axis=1, kind="stable"), axis=1, kind="stable")
    probability = (density - epsilon) + ranks / (delta.shape[1] - 1) * 2 * epsilon
    (draw,) = uniform_draws(delta.shape)
    kept = np.where(draw < probability, delta, 0.0)
    expected = BASE + kept * (np.abs(delta).sum() / np.abs(kept).sum())  # rescaled to the task vector's L1 norm

    result = run(
        "della_linear", MODELS[:1], base=BASE, per_model=[{"weight": 1.0, "density": density, "epsilon": epsilon}]
    )

    close(result, expected)


def test_draws_are_every_65536th_in_0_to_1_about_equally_often() -> None:
    from tui_merge.methods import draws

    u = draws.uniform((1 << 22,), torch.Generator().manual_seed(3)).numpy().astype(np.float64)
    steps = u * 65536
    assert np.array_equal(steps, np.floor(steps)) and steps.min() == 0 and steps.max() == 65535
    counts = np.bincount(steps.astype(np.int64), minlength=65536)  # 64 expected each
    assert counts.min() > 20 and counts.max() < 120
    kept = draws.below((1 << 22,), 0.3, torch.Generator().manual_seed(4)).numpy()
    assert set(np.unique(kept)) == {0.0, 1.0}
    assert kept.mean() == pytest.approx(19661 / 65536, abs=0.001)


def test_random_methods_repeat_with_the_seed_and_change_without_it() -> None:
    per_model = [{"weight": 1.0, "density": 0.5}] * 3

    first = run("dare_ties", MODELS, base=BASE, per_model=per_model, seed=3)
    again = run("dare_ties", MODELS, base=BASE, per_model=per_model, seed=3)
    other = run("dare_ties", MODELS, base=BASE, per_model=per_model, seed=4)

    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


# --- specialised methods --------------------------------------------------------------------


def test_model_stock_interpolates_by_the_mean_pairwise_cosine() -> None:
    offsets = [(m - BASE).ravel().astype(np.float64) for m in MODELS]
    cosines = [
        offsets[i] @ offsets[j] / (np.linalg.norm(offsets[i]) * np.linalg.norm(offsets[j]))
        for i in range(3)
        for j in range(i + 1, 3)
    ]
    cos = np.mean(cosines)
    t = 3 * cos / (1 + 2 * cos)
    expected = t * np.mean(MODELS, axis=0) + (1 - t) * BASE

    close(run("model_stock", MODELS, base=BASE), expected, tol=1e-4)


def test_sce_weights_task_vectors_by_energy_and_elects_signs() -> None:
    deltas = [m - BASE for m in MODELS[:2]]
    deltas[1] = deltas[1] * 3
    energy = np.array([np.mean(d**2) for d in deltas])
    weights = energy / energy.sum()
    sign = np.where(deltas[0] + deltas[1] >= 0, 1.0, -1.0)
    kept = [w * (np.sign(d) == sign) for w, d in zip(weights, deltas)]
    divisor = np.where(kept[0] + kept[1] == 0, 1.0, kept[0] + kept[1])
    expected = BASE + (deltas[0] * kept[0] + deltas[1] * kept[1]) / divisor

    close(run("sce", [BASE + d for d in deltas], base=BASE), expected)


@pytest.mark.parametrize("model_count", [2, 3])
def test_sce_keeps_the_highest_variance_positions_later_ones_first_among_equals(model_count: int) -> None:
    rng = np.random.default_rng(8)
    base = np.full((5, 6), 0.5, dtype=np.float32)
    models = [base + rng.integers(-2, 3, size=base.shape).astype(np.float32) * 0.25 for _ in range(model_count)]
    deltas = np.stack(models).astype(np.float64) - base
    variance = deltas.var(axis=0).ravel()
    keep = int(0.4 * np.count_nonzero(variance))
    kept_positions = np.argsort(variance, kind="stable")[variance.size - keep :]  # stable: ties in index order
    assert len(np.unique(variance[kept_positions])) < keep  # the boundary really falls among equal variances
    mask = np.zeros(variance.size)
    mask[kept_positions] = 1
    masked = deltas * mask.reshape(base.shape)
    energy = (masked**2).mean(axis=(1, 2))
    weights = energy / energy.sum()
    sign = np.where(masked.sum(axis=0) >= 0, 1.0, -1.0)
    agree = np.sign(masked) == sign
    divisor = (weights[:, None, None] * agree).sum(axis=0)
    merged = (masked * weights[:, None, None] * agree).sum(axis=0) / np.where(divisor == 0, 1, divisor)
    expected = (base + merged).astype(np.float32)

    close(run("sce", models, base=base, select_topk=0.4), expected)


def test_model_stock_filter_wise_uses_each_rows_own_cosine() -> None:
    rows = []
    for r in range(BASE.shape[0]):
        offsets = [(m[r] - BASE[r]).astype(np.float64) for m in MODELS]
        pairs = [
            offsets[i] @ offsets[j] / (np.linalg.norm(offsets[i]) * np.linalg.norm(offsets[j]))
            for i in range(3)
            for j in range(i + 1, 3)
        ]
        t = 3 * np.mean(pairs) / (1 + 2 * np.mean(pairs))
        rows.append(t * np.mean([m[r] for m in MODELS], axis=0) + (1 - t) * BASE[r])

    close(run("model_stock", MODELS, base=BASE, filter_wise=True), np.stack(rows), tol=1e-4)


def test_nuslerp_row_wise_interpolates_columns() -> None:
    a, b = MODELS[0], MODELS[1]
    columns = np.stack([numpy_slerp(0.25, a[:, j], b[:, j]) for j in range(a.shape[1])], axis=1)

    result = run(
        "nuslerp", [a, b], per_model=[{"weight": 3.0}, {"weight": 1.0}], nuslerp_flatten=False, nuslerp_row_wise=True
    )

    close(result, columns, tol=1e-4)


def test_nearswap_weight_is_t_over_distance() -> None:
    other = MODELS[0]
    weight = np.clip(0.1 / np.abs(BASE - other), 0, 1)

    close(run("nearswap", [other], base=BASE, t=0.1), weight * other + (1 - weight) * BASE)
    close(run("nearswap", [BASE.copy()], base=BASE, t=0.0), BASE)


def test_ram_averages_overlapping_changes_and_keeps_unique_ones() -> None:
    a = BASE.copy()
    b = BASE.copy()
    a[0, :5] += 1.0  # only a changes these
    a[1, :5] += 1.0
    b[1, :5] += 3.0  # both change row 1
    expected = BASE.copy()
    expected[0, :5] += 1.0
    expected[1, :5] += 2.0

    close(run("ram", [a, b], base=BASE), expected)


def test_ramplus_boosts_unique_changes_by_the_overlap_ratio() -> None:
    a, b = BASE.copy(), BASE.copy()
    a[0, :4] += 1.0  # 4 unique to a
    a[1, :2] += 1.0  # 2 shared
    b[1, :2] += 1.0
    boost = 1 + 0.1 * min(2 / 4, 0.2)
    expected = BASE.copy()
    expected[0, :4] += boost
    expected[1, :2] += 1.0

    close(run("ramplus_tl", [a, b], base=BASE), expected)


def test_arcee_fusion_keeps_outlier_changes_only() -> None:
    other = BASE.copy()
    other[2, 3] += 5.0  # one large change: an outlier of importance
    other += RNG.normal(scale=1e-4, size=BASE.shape).astype(np.float32)

    result = run("arcee_fusion", [other], base=BASE)

    assert result[2, 3] == pytest.approx(other[2, 3])
    mask = np.ones(BASE.shape, dtype=bool)
    mask[2, 3] = False
    close(result[mask], BASE[mask], tol=1e-3)


def test_arcee_fusion_threshold_is_tukeys_fence_over_the_sorted_importance() -> None:
    other = MODELS[0]
    p = np.exp(other - other.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True) + 1e-8
    q = np.exp(BASE - BASE.max(axis=1, keepdims=True))
    q = q / q.sum(axis=1, keepdims=True) + 1e-8
    importance = np.abs(other - BASE) * (p * np.log(p / q)).sum(axis=1, keepdims=True)
    ordered = np.sort(importance.ravel())
    q1, median, q3 = (ordered[int(f * (ordered.size - 1))] for f in (0.25, 0.5, 0.75))
    keep = importance >= median + 1.5 * (q3 - q1)
    assert 0 < keep.sum() < keep.size

    close(run("arcee_fusion", [other], base=BASE), np.where(keep, other, BASE))


def test_passthrough_scales_its_single_input() -> None:
    close(run("passthrough", [MODELS[0]], per_model=[{"scale": 0.5}]), MODELS[0] * 0.5)


def test_circuit_drop_rates_follow_the_priority_formula() -> None:
    # Written out from the tool's definition: p = 1 - [(1-T) 0.5^(count-i+1) 2(1-b) + T (1-b)].
    assert calculate_p(1, 1, 0.0, 0.5) == 1.0
    assert calculate_p(3, 3, 0.0, 0.5) == pytest.approx(0.5)  # highest priority keeps 1 - base_droprate
    assert calculate_p(2, 3, 0.0, 0.5) == pytest.approx(0.75)
    assert calculate_p(1, 3, 0.0, 0.5) == pytest.approx(0.75)  # i = 1 counts as 2
    assert calculate_p(2, 3, 1.0, 0.3) == pytest.approx(0.3)  # temperature 1: every model at base_droprate


def test_circuit_higher_priority_wins_sign_conflicts_and_agreeing_changes_blend() -> None:
    base = np.zeros((1, 4), dtype=np.float32)
    high = np.array([[1.0, 1.0, 0.0, 2.0]], dtype=np.float32)  # listed first: highest priority
    low = np.array([[-1.0, 3.0, 5.0, 0.0]], dtype=np.float32)
    # Temperature 1 with base_droprate 0 gives every model drop rate 0, so nothing is pruned.
    options = {"base_droprate": 0.0, "temperature": 1.0, "epsilon": 0.0, "skip_rescaling": True}

    result = run("circuit", [high, low], base=base, **options)

    # conflict -> high's value; agreement -> running mean of (3, 1); only low -> 5; only high -> 2
    close(result, [[1.0, 2.0, 5.0, 2.0]])


def test_circuit_at_temperature_zero_halves_earlier_contributions() -> None:
    base = np.zeros((1, 1), dtype=np.float32)
    models = [np.full((1, 1), v, dtype=np.float32) for v in (8.0, 4.0, 2.0)]  # highest priority first

    result = run("circuit", models, base=base, base_droprate=0.0, temperature=0.0, epsilon=0.0, skip_rescaling=True)

    # Folding lowest first: 2, then (2 + 4)/2 = 3, then (3 + 8)/2 = 5.5 -- if none were dropped.
    drop_rates = [calculate_p(i, 3, 0.0, 0.0) for i in (1, 2, 3)]
    draws = [u.item() for u in uniform_draws((1, 1), count=3)]
    kept = [value for value, p, u in zip((2.0, 4.0, 8.0), drop_rates, draws) if not u < p]
    expected = kept[0] if kept else 0.0
    for value in kept[1:]:
        expected = (expected + value) / 2
    close(result, [[expected]])


# --- registry -------------------------------------------------------------------------------


def test_registry_defaults_match_mergekit() -> None:
    expect = {
        ("ties", "normalize"): True, ("della", "normalize"): True, ("task_arithmetic", "normalize"): False,
        ("dare_ties", "normalize"): False, ("dare_linear", "rescale"): True, ("della", "epsilon"): 0.15,
        ("breadcrumbs", "gamma"): 0.01, ("ties", "density"): 1.0, ("ties", "lambda"): 1.0,
        ("nuslerp", "nuslerp_flatten"): True, ("karcher", "max_iter"): 10, ("sce", "select_topk"): 1.0,
        ("circuit", "base_droprate"): 0.5, ("circuit", "meaningful_change_threshold"): 2e-6,
    }  # fmt: skip
    for (method, name), value in expect.items():
        assert REGISTRY[method].param(name).default == value, (method, name)
    assert REGISTRY["slerp"].param("t").required


def test_every_named_method_is_registered() -> None:
    names = {
        "linear", "slerp", "nuslerp", "multislerp", "karcher", "task_arithmetic", "ties", "dare_ties",
        "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "sce", "model_stock",
        "nearswap", "ram", "ramplus_tl", "arcee_fusion", "passthrough", "circuit",
    }  # fmt: skip
    assert {method.name for method in METHODS} == names


@pytest.mark.parametrize(("typed", "expected"), [("dare-ties", "dare_ties"), ("Slerp", "slerp"), ("tie", "ties")])
def test_misspelt_methods_get_the_nearest_name(typed: str, expected: str) -> None:
    with pytest.raises(BadInputError, match=f"did you mean '{expected}'"):
        get_method(typed)


def test_no_kernel_produces_nan_on_zero_task_vectors() -> None:
    for method in METHODS:
        count = max(method.min_models, min(method.max_models or 2, 2))
        models = [BASE.copy() for _ in range(count)]
        required = {p.name: 0.5 for p in method.params if p.required}
        result = run(method.name, models, base=None if method.base == "none" else BASE, **required)
        assert np.isfinite(result).all(), method.name
        assert not math.isnan(float(result.sum()))


def test_ties_breaks_a_sign_tie_toward_positive_like_mergekit() -> None:
    base = np.zeros((1, 2), dtype=np.float32)
    plus = np.array([[1.0, 2.0]], dtype=np.float32)
    minus = np.array([[-1.0, -1.0]], dtype=np.float32)

    result = run("ties", [plus, minus], base=base, per_model=[{"weight": 1.0}, {"weight": 1.0}])

    # First value: the weighted sum is 0, so the positive sign is elected and only +1 survives.
    close(result, [[1.0, 2.0]])


@pytest.mark.parametrize("values", ["distinct", "bf16 ties", "all equal", "zeros and denormals"])
def test_rank_mask_matches_a_stable_sort(values) -> None:
    from tui_merge.methods.ranking import rank_mask

    generator = torch.Generator().manual_seed(5)
    if values == "distinct":
        magnitudes = torch.rand(5000, generator=generator)
    elif values == "bf16 ties":  # few distinct values, as deltas of bf16 checkpoints have
        magnitudes = (torch.randn(5000, generator=generator) * 0.002).to(torch.bfloat16).float().abs()
    elif values == "all equal":
        magnitudes = torch.full((5000,), 0.25)
    else:
        magnitudes = torch.where(torch.rand(5000, generator=generator) < 0.5, 0.0, 1e-40)
    order = torch.argsort(magnitudes, stable=True)
    for start, stop in [(0, 5000), (2500, 5000), (0, 1), (1234, 4321), (4999, 5000), (3000, 3000), (0, 0)]:
        expected = torch.zeros(5000, dtype=torch.bool)
        expected[order[start:stop]] = True
        assert torch.equal(rank_mask(magnitudes.view(50, 100), start, stop).view(-1), expected), (start, stop)


@pytest.mark.parametrize("values", ["bf16 ties", "float32"])
@pytest.mark.parametrize("rank", [0, 1, 2500, 4321, 4999, 5000])
def test_blockwise_rank_mask_equals_the_whole_tensor_mask(rank, values) -> None:
    from tui_merge.methods.ranking import BlockwiseRankMask, rank_mask

    generator = torch.Generator().manual_seed(9)
    magnitudes = (torch.randn(5000, generator=generator) * 0.002).abs()
    if values == "bf16 ties":
        magnitudes = magnitudes.to(torch.bfloat16).float()
    blocks = [magnitudes[start:stop] for start, stop in ((0, 700), (700, 701), (701, 3000), (3000, 5000))]
    selector = BlockwiseRankMask(rank, 5000)
    for block in blocks:
        selector.count_high(block)
    for block in blocks:
        selector.count_low(block)
    masks = torch.cat([selector.mask(block) for block in blocks])

    assert torch.equal(masks, rank_mask(magnitudes, rank, 5000))


def _stable_ranks(keys: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable").astype(np.float32)


@pytest.mark.parametrize("values", ["bf16 deltas", "float32", "ties and zeros"])
def test_row_ranks_are_stable_ranks_of_the_bf16_truncated_magnitudes(values) -> None:
    from tui_merge.methods.ranking import row_ranks

    generator = torch.Generator().manual_seed(3)
    if values == "bf16 deltas":  # a fine-tune's task vector: differences of nearby bf16 numbers
        base = torch.randn(40, 300, generator=generator).to(torch.bfloat16).float()
        tuned = (base + 0.01 * torch.randn(40, 300, generator=generator)).to(torch.bfloat16).float()
        magnitudes = (tuned - base).abs()
    elif values == "float32":
        magnitudes = torch.rand(40, 300, generator=generator) * 1e-3
    else:
        magnitudes = torch.where(torch.rand(40, 300, generator=generator) < 0.5, 0.0, 0.125)
    truncated = magnitudes.numpy().view(np.uint32) >> 16

    ranks = row_ranks(magnitudes).numpy()

    np.testing.assert_array_equal(ranks, _stable_ranks(truncated))
    exact = _stable_ranks(magnitudes.numpy())
    if values == "ties and zeros":  # bf16 values: the ranks of the magnitudes themselves
        np.testing.assert_array_equal(ranks, exact)
    elif values == "bf16 deltas":  # few values leave bf16; they move only within their group of equal truncations
        assert 0 < np.mean(ranks != exact) < 0.01
        group_sizes = (truncated[:, :, None] == truncated[:, None, :]).sum(axis=2)
        assert np.all(np.abs(ranks - exact) < group_sizes)


BLOCK_CASES = {
    "slerp": ({"t": 0.3}, [{}]),
    "ties": ({}, [{"density": 0.4}, {"density": 0.7, "weight": 0.5}]),
    "breadcrumbs": ({"rescale": True}, [{"density": 0.5}, {"density": 0.6, "gamma": 0.2}]),
    "dare_ties": ({}, [{"density": 0.5}, {"density": 0.3, "weight": 0.5}]),
    "dare_linear": ({}, [{"density": 0.6}, {"density": 0.4}]),
    "della": ({}, [{"density": 0.5, "epsilon": 0.2}, {"density": 0.4, "epsilon": 0.1}]),
    "della_linear": ({"rescale": False}, [{"density": 0.5, "epsilon": 0.2}, {"density": 0.4, "epsilon": 0.1}]),
    "breadcrumbs_ties": ({}, [{"density": 0.5}, {"density": 0.3, "gamma": 0.1}]),
    "sce": ({"select_topk": 0.4}, [{}, {}, {}]),
    "model_stock": ({}, [{}, {}, {}]),
    "nuslerp": ({"nuslerp_flatten": False, "nuslerp_row_wise": True}, [{}, {"weight": 3.0}]),
    "multislerp": ({}, [{}, {"weight": 2.0}, {}]),
    "karcher": ({}, [{}, {}, {}]),
    "ramplus_tl": ({"alpha": 5.0, "epsilon": 0.1}, [{}, {}, {}]),
    "arcee_fusion": ({}, [{}]),
    "circuit": ({"temperature": 0.3}, [{}, {}, {}]),
}


def test_every_method_with_a_block_merger_has_a_case_below() -> None:
    assert {method.name for method in METHODS if method.blocks} == set(BLOCK_CASES)


@pytest.mark.parametrize(
    ("method", "kept_bytes"),
    [(method, None) for method in sorted(BLOCK_CASES)]
    + [("dare_ties", 0), ("della", 0), ("arcee_fusion", 0), ("sce", 0)],
)
def test_block_mergers_on_many_tied_values_give_the_whole_tensor_bytes(method: str, kept_bytes, monkeypatch) -> None:
    """Blocks of unequal sizes, on values with many ties (``whole_and_by_blocks``).

    With ``kept_bytes`` 0, DARE and DELLA draw their masks again for the
    merge, and arcee fusion and SCE compute their importance and variance
    again, instead of keeping them.
    """
    if kept_bytes is not None:
        from tui_merge.methods import blocks

        monkeypatch.setattr(blocks, "KEPT_VALUES_BYTES", kept_bytes)
    whole, merged = whole_and_by_blocks(method, (13, 8), [(0, 4), (4, 5), (5, 11), (11, 13)])
    assert torch.equal(merged, whole)


@pytest.mark.parametrize("method", ["dare_ties", "della", "circuit"])
def test_random_methods_by_blocks_of_odd_width_rows_draw_what_they_draw_whole(method: str) -> None:
    """Four draws come from one generator word, never shared between blocks: blocks of rows 5 wide hold 4k rows."""
    from tui_merge.methods.draws import VALUES_PER_WORD
    from tui_merge.models.reader import row_blocks

    row_ranges = row_blocks((13, 5), 4 * 5 * 2, VALUES_PER_WORD)  # two rows' bytes per block, rounded up to 4 rows
    assert row_ranges == [(0, 4), (4, 8), (8, 12), (12, 13)]
    whole, merged = whole_and_by_blocks(method, (13, 5), row_ranges)
    assert torch.equal(merged, whole)
    whole, merged = whole_and_by_blocks(method, (13, 5), [(0, 2), (2, 4), (4, 13)])  # 10 values: words split
    assert not torch.equal(merged, whole)


def whole_and_by_blocks(
    method: str, shape: tuple[int, int], row_ranges: list[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One tensor merged whole by the method's kernel, and by its block merger on ``row_ranges``.

    The values are small multiples of 1/4 with many ties (the cases where blockwise selection is hardest),
    so every float64 sum is exact and the blocks must give the very bytes of the whole tensor.
    """
    spec = get_method(method)
    options, per_model = BLOCK_CASES[method]
    rng = np.random.default_rng(21)
    base = torch.from_numpy((rng.integers(-3, 4, size=shape) * 0.5).astype(np.float32))
    models = [base + torch.from_numpy(rng.integers(-2, 3, size=shape).astype(np.float32) * 0.25) for _ in per_model]
    params = [defaults(method, "model") | params for params in per_model]
    options = defaults(method, "global") | options

    def inputs(rows: slice, generators: list[torch.Generator]) -> MergeInputs:
        return MergeInputs(
            tensors=[model[rows] for model in models],
            params=params,
            base=None if spec.base == "none" else base[rows],
            options=options,
            generators=generators,
        )

    def generators() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(100 + index) for index in range(len(models))] if spec.random else []

    whole = spec.load_kernel()(inputs(slice(None), generators()))
    blocks = [slice(start, stop) for start, stop in row_ranges]
    shared = generators()
    merger = spec.load_blocks()(options, params, base.numel())
    for round_index in range(merger.passes):
        for rows in blocks:
            merger.observe(inputs(rows, shared), round_index)
    return whole, torch.cat([merger.merge(inputs(rows, shared)) for rows in blocks])
