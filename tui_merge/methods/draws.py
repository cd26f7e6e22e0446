"""The uniform draws of the random methods (DARE, DELLA, circuit): 16 bits per value, four values per 64-bit word.

torch's float32 ``rand`` on the CPU spends one Mersenne-twister word and a
conversion on every value (about 3 ns); DARE draws once for every value of
every fine-tune, so on a large merge that was most of its time. Here each
64-bit word the generator gives (``randint`` over the whole int64 range)
is read as four 16-bit quarters ``k`` (int16, in memory order), and each
quarter is one draw ``u = (k + 32768) / 65536``, a multiple of 1/65536 in
``[0, 1)``, at about a third of the cost. A value is kept (or dropped) when
its ``u`` is below its probability, so probabilities count to 1/65536:
density 0.3 keeps 19,661 values in 65,536 (0.300003). That is far finer than
any recipe's density and than the chance spread of a drop mask itself.

Words are never shared between calls: a call for ``n`` values takes
``ceil(n / 4)`` words. A tensor merged a block of rows at a time therefore
draws what it would whole only when every block but the last holds a
multiple of ``VALUES_PER_WORD`` values, which the executor's row blocks do
for random methods (``models.reader.row_blocks``).
"""

from __future__ import annotations

import math

import torch

VALUES_PER_WORD = 4
"""Draws taken from one 64-bit word of the generator."""

_INT64 = torch.iinfo(torch.int64)


def uniform(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    """float32 draws of ``shape``, each ``(k + 32768) / 65536`` for the next 16-bit quarter ``k`` of the generator."""
    count = math.prod(shape)
    word_count = -(-count // VALUES_PER_WORD)
    words = torch.randint(_INT64.min, _INT64.max, (word_count,), dtype=torch.int64, generator=generator)
    # k + 32768 <= 65535 and the scale is a power of two: both steps are exact in float32.
    return words.view(torch.int16)[:count].float().add_(32768).mul_(1 / 65536).reshape(shape)


def below(
    shape: tuple[int, ...] | torch.Size,
    probability: float | torch.Tensor,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """float32 on ``device``: 1.0 where the draw is below ``probability`` (a number or a tensor of ``shape``), else 0.0.

    The draws are made on the CPU (the generators live there) and compared
    where the probabilities are. A float mask rather than a bool one:
    multiplying a float tensor by a bool one takes torch's slow mixed-type
    path (about 1 ns a value against 0.1).
    """
    return uniform(shape, generator).to(device).lt_(probability)
