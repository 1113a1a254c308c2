"""Walker/Vose alias table: O(1) weighted draws after an O(n) build."""

from __future__ import annotations

import numpy as np


class AliasTable:
    """Draws row i with probability ``weights[i] / sum(weights)``.

    Column i keeps itself with probability ``prob[i]`` and otherwise yields
    ``alias[i]``. The build is Vose's sweep written with cumulative sums
    instead of a Python loop, so a 1M-row table builds in milliseconds.
    """

    def __init__(self, weights: np.ndarray) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        n = len(weights)
        if n == 0 or not np.all(weights >= 0) or weights.sum() <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        scaled = weights * (n / weights.sum())
        small = np.flatnonzero(scaled < 1.0)
        large = np.flatnonzero(scaled >= 1.0)
        self.prob = np.ones(n)
        self.alias = np.arange(n)
        if len(large) == 0:
            # Every scaled weight is 1 up to rounding: already uniform.
            return
        # The sweep hands smalls, in order, to larges, in order. The current
        # large gives up its excess until it drops below 1; it then becomes
        # a small whose alias is the next large. With D the cumulative
        # deficit of the smalls and E the cumulative excess of the larges,
        # small k goes to large j when E[j-1] <= D[k-1] < E[j], and large j
        # ends short by D[k] - E[j] for the last small k it took.
        deficit = np.cumsum(1.0 - scaled[small])
        excess = np.cumsum(scaled[large] - 1.0)
        before = np.concatenate([[0.0], deficit[:-1]])
        owner = np.searchsorted(excess, before, side="right")
        # Rounding can leave a last sliver past E[-1]: the last large.
        owner = np.minimum(owner, len(large) - 1)
        self.prob[small] = scaled[small]
        self.alias[small] = large[owner]
        # The last large takes whatever is left and keeps prob 1.
        last = np.searchsorted(before, excess[:-1], side="left") - 1
        donors = np.flatnonzero(last >= 0)
        short = deficit[last[donors]] - excess[donors]
        donors, short = donors[short > 0], short[short > 0]
        self.prob[large[donors]] = np.maximum(1.0 - short, 0.0)
        self.alias[large[donors]] = large[donors + 1]

    def __len__(self) -> int:
        return len(self.prob)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` independent rows (int64), with replacement."""
        column = rng.integers(0, len(self.prob), size=size)
        keep = rng.random(size) < self.prob[column]
        return np.where(keep, column, self.alias[column])

    def probabilities(self) -> np.ndarray:
        """The distribution the table encodes (for tests and checks)."""
        n = len(self.prob)
        given = np.bincount(self.alias, weights=1.0 - self.prob, minlength=n)
        return (self.prob + given) / n
