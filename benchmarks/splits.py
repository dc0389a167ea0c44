"""Train/test splits for the benchmarks, by group (prompt, instruction, task), none on both sides."""

from __future__ import annotations

import numpy as np


def split_by_group(rows: list[dict], key: str, seed: int, test_share: float) -> tuple[list[dict], list[dict]]:
    """Rows split so that no value of ``rows[i][key]`` is on both sides; ``test_share`` of the groups is tested."""
    groups = sorted({r[key] for r in rows})
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    test = set(groups[: round(len(groups) * test_share)])
    return [r for r in rows if r[key] not in test], [r for r in rows if r[key] in test]
