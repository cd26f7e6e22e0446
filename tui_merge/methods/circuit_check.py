"""A self-check of the circuit method on synthetic tensors: what ``tui-merge circuit --test`` reports.

Each check builds small tensors whose correct result is known from the
method's definition (drop rates from ``calculate_p``, priority, the two
blending rules, the threshold, rescaling in expectation, blocks equal to the
whole tensor), runs the method and compares. A failure means this
installation computes something other than Circuit-Merge's method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tui_merge.methods.blocks import merge_whole
from tui_merge.methods.circuit import CircuitBlocks, calculate_p, circuit, prune
from tui_merge.methods.inputs import MergeInputs

_VALUES = 200_000
"""Values per synthetic tensor in the statistical checks: rates come out within about 0.3% of their expectation."""


@dataclass(frozen=True)
class CheckResult:
    """One check: what it shows, whether it held, and the numbers behind it."""

    name: str
    passed: bool
    detail: str


def _options(**overrides: object) -> dict:
    options = {
        "temperature": 0.0, "base_droprate": 0.5, "meaningful_change_threshold": 2e-6, "epsilon": 0.1,
        "skip_rescaling": False,
    }  # fmt: skip
    return options | overrides


def _merge(base: torch.Tensor, variants: list[torch.Tensor], seed: int = 0, **options: object) -> torch.Tensor:
    generators = [torch.Generator().manual_seed(seed + index) for index in range(len(variants))]
    inputs = MergeInputs(variants, [{} for _ in variants], base, _options(**options), generators=generators)
    return circuit(inputs)


def _drop_rates() -> CheckResult:
    count, measured, expected = 3, [], []
    for i in range(1, count + 1):
        p = calculate_p(i, count, 0.0, 0.5)
        delta = torch.full((_VALUES,), 0.01)  # equal magnitudes: every value is dropped with probability p
        kept = prune(delta, p, 0.1, torch.Generator().manual_seed(i), rescale=False)
        measured.append(float((kept == 0).float().mean()))
        expected.append(p)
    passed = all(abs(m - e) < 0.01 for m, e in zip(measured, expected))
    detail = "measured " + "/".join(f"{m:.3f}" for m in measured) + ", expected " + "/".join(f"{e:g}" for e in expected)
    return CheckResult("drop rates follow the priority formula (lowest priority first)", passed, detail)


def _rescaling() -> CheckResult:
    generator = torch.Generator().manual_seed(3)
    delta = torch.rand(_VALUES, generator=generator) * 0.02 + 0.001
    kept = prune(delta, 0.6, 0.1, generator, rescale=True)
    ratio = float(kept.sum() / delta.sum())
    return CheckResult(
        "rescaling keeps the expected change", abs(ratio - 1) < 0.02, f"kept sum / original = {ratio:.4f}"
    )


def _magnitude() -> CheckResult:
    generator = torch.Generator().manual_seed(4)
    delta = torch.rand(_VALUES, generator=generator) + 1e-3
    kept = prune(delta, 0.5, 0.3, generator, rescale=False) != 0
    order = delta.argsort()
    small, large = (
        float(kept[order[: _VALUES // 10]].float().mean()),
        float(kept[order[-_VALUES // 10 :]].float().mean()),
    )
    return CheckResult(
        "larger changes survive more often",
        large > small + 0.2,
        f"kept {small:.3f} of the smallest tenth, {large:.3f} of the largest",
    )


def _exact(name: str, actual: torch.Tensor, expected: list[float]) -> CheckResult:
    target = torch.tensor(expected, dtype=actual.dtype)
    passed = torch.allclose(actual, target, atol=1e-6)
    return CheckResult(name, passed, f"got {[round(v, 4) for v in actual.tolist()]}, expected {expected}")


def _priority() -> CheckResult:
    base = torch.zeros(4)
    high, low = torch.tensor([1.0, 1.0, 0.0, 2.0]), torch.tensor([-1.0, 3.0, 5.0, 0.0])
    merged = _merge(base, [high, low], temperature=1.0, base_droprate=0.0, epsilon=0.0, skip_rescaling=True)
    return _exact("higher priority wins sign conflicts; lone changes are kept whole", merged, [1.0, 2.0, 5.0, 2.0])


def _halving() -> CheckResult:
    # Two variants at temperature 0 and base_droprate 0 both have drop rate 0: nothing is pruned.
    merged = _merge(torch.zeros(1), [torch.tensor([8.0]), torch.tensor([4.0])], temperature=0.0, base_droprate=0.0)
    return _exact("agreeing changes halve the earlier ones at temperature 0", merged, [6.0])


def _running_mean() -> CheckResult:
    variants = [torch.tensor([8.0]), torch.tensor([4.0]), torch.tensor([2.0])]
    merged = _merge(torch.zeros(1), variants, temperature=1.0, base_droprate=0.0, skip_rescaling=True)
    return _exact("agreeing changes average at temperature 1", merged, [14.0 / 3.0])


def _threshold() -> CheckResult:
    base = torch.zeros(3)
    variant = torch.tensor([1e-7, 0.5, -1e-6])
    merged = _merge(base, [variant], temperature=1.0, base_droprate=0.0, epsilon=0.0, skip_rescaling=True)
    return _exact("changes below meaningful_change_threshold count as none", merged, [0.0, 0.5, 0.0])


def _blocks() -> CheckResult:
    generator = torch.Generator().manual_seed(5)
    base = torch.randn(64, 32, generator=generator)
    variants = [base + 0.01 * torch.randn(64, 32, generator=generator) for _ in range(3)]

    def inputs(rows: slice, generators: list[torch.Generator]) -> MergeInputs:
        return MergeInputs([v[rows] for v in variants], [{}, {}, {}], base[rows], _options(), generators=generators)

    def fresh() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(10 + index) for index in range(3)]

    whole = merge_whole(CircuitBlocks, inputs(slice(None), fresh()))
    again = merge_whole(CircuitBlocks, inputs(slice(None), fresh()))
    shared, blocks = fresh(), [slice(0, 10), slice(10, 11), slice(11, 64)]
    merger = CircuitBlocks(_options(), [{}, {}, {}], base.numel())
    for rows in blocks:
        merger.observe(inputs(rows, shared), 0)
    by_blocks = torch.cat([merger.merge(inputs(rows, shared)) for rows in blocks])
    passed = torch.equal(whole, again) and torch.equal(whole, by_blocks)
    return CheckResult("the same seed gives the same bytes, whole or by blocks of rows", passed, "64 x 32, 3 variants")


CHECKS: tuple[Callable[[], CheckResult], ...] = (
    _drop_rates, _rescaling, _magnitude, _priority, _halving, _running_mean, _threshold, _blocks,
)  # fmt: skip


def self_check() -> list[CheckResult]:
    """Run every check."""
    with torch.no_grad():
        return [check() for check in CHECKS]


def print_self_check() -> int:
    """Print the report; 0 when every check passed, else 1."""
    results = self_check()
    print("circuit self-check on synthetic tensors:")
    for result in results:
        print(f"  {'ok  ' if result.passed else 'FAIL'}  {result.name}: {result.detail}")
    failed = sum(not result.passed for result in results)
    print(f"{len(results) - failed} of {len(results)} checks passed.")
    return 1 if failed else 0
