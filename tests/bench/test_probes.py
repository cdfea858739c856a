"""Pieces of ``stvg bench probes`` (stvg.bench.probes) against direct computations."""

from __future__ import annotations

import numpy as np

from stvg.bench.probes import fit_pair_probe, pair_accuracy, square_shares, with_action


def test_square_shares_by_hand():
    # a 160 x 120 frame padded to 160 x 160; a 2 x 2 grid has cells of 80 x 80 px
    shares = square_shares((60.0, 100.0, 100.0, 110.0), 160, 120, (2, 2))
    assert np.allclose(shares, [[0.0, 0.0], [0.5, 0.5]])


def test_with_action_is_one_weight_vector_per_action():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = with_action(x, ["walk_left", "jump"])  # ACTIONS order: walk_left, walk_right, jump
    assert out.shape == (2, 2 * 7 + 2)
    assert np.allclose(out[0, :3], [1.0, 0.0, 0.0]) and np.allclose(out[0, 7:10], [2.0, 0, 0])
    assert np.allclose(out[1, :3], [0.0, 0.0, 3.0]) and np.allclose(out[1, -2:], [3.0, 4.0])


def test_pair_probe_finds_the_cue_and_only_it():
    rng = np.random.default_rng(0)
    target, other = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    target[:, 1] += 2.0  # the target stands out on feature 1
    w, _, std = fit_pair_probe(target[:100], other[:100])
    assert pair_accuracy(w, std, target[100:], other[100:]) > 0.85
    assert abs(w[1]) > 3 * max(abs(w[0]), abs(w[2]))
    noise = rng.normal(size=(200, 3))
    w, _, std = fit_pair_probe(noise[:100], other[:100])
    assert 0.35 < pair_accuracy(w, std, noise[100:], other[100:]) < 0.65
