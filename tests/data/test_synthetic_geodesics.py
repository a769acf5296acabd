"""Geodesics on the canonical synthetic body: the table the synthetic DensePose AP reads."""

import numpy as np
import pytest

from edgecap.data.synthetic_geodesics import SPACING, canonical_primitives, surface_samples, synthetic_geodesics
from edgecap.metrics.densepose import ChartGeodesics


@pytest.fixture(scope="module")
def table():
    return synthetic_geodesics()


@pytest.fixture(scope="module")
def samples():
    return surface_samples()


def test_every_part_is_sampled_on_the_outer_surface(samples):
    points, part, u, v = samples
    assert set(np.unique(part)) == set(range(1, 25))
    assert ((u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)).all()
    # Joints overlap capsules; what is kept lies on no other capsule's inside.
    prims = canonical_primitives()
    for j in range(len(prims["length"])):
        q = (points - prims["origin"][j]) @ prims["inv"][j].T
        radial = np.hypot(q[:, 0], q[:, 1])
        r = prims["r0"][j] + (prims["r1"][j] - prims["r0"][j]) * q[:, 2] / prims["length"][j]
        deep_in_cone = (q[:, 2] > 0.01) & (q[:, 2] < prims["length"][j] - 0.01) & (radial < r - 0.005)
        assert not deep_in_cone.any(), f"samples inside primitive {j}"


def test_the_same_point_is_zero_apart_and_distances_are_symmetric(table):
    i, u, v = np.array([1, 10, 23, 4]), np.array([0.3, 0.5, 0.2, 0.9]), np.array([0.5, 0.1, 0.7, 0.4])
    assert np.array_equal(table.distance(i, u, v, i, u, v), np.zeros(4))
    j, s, t = np.array([2, 8, 24, 3]), np.array([0.6, 0.5, 0.8, 0.1]), np.array([0.5, 0.9, 0.3, 0.6])
    np.testing.assert_array_equal(table.distance(i, u, v, j, s, t), table.distance(j, s, t, i, u, v))


def test_across_a_seam_is_near_where_chart_distances_are_infinite(table):
    # Left thigh: its front chart (10) ends at V = 1 on the person's left side, where the back
    # chart (8) starts at V = 0. Head: 23 ends at the face (V = 1) where 24 starts (V = 0).
    args = ([10, 23], [0.5, 0.5], [0.99, 0.99], [8, 24], [0.5, 0.5], [0.01, 0.01])
    near = table.distance(*args)
    assert (near < 2.5 * SPACING).all(), near
    assert np.isinf(ChartGeodesics().distance(*args)).all()


def test_distances_follow_the_body(table, samples):
    points, part, u, v = samples
    # Front centre to back centre of the left thigh at mid-length: about half way round.
    prims = canonical_primitives()
    thigh = [k for k in range(len(prims["kind"])) if prims["kind"][k] == 4 and prims["side"][k] == 1][0]
    r0, r1, length = prims["r0"][thigh], prims["r1"][thigh], prims["length"][thigh]
    z = 0.5 * (length + r0 + r1) - r0
    half_round = np.pi * (r0 + (r1 - r0) * z / length)
    d = table.distance([10], [0.5], [0.5], [8], [0.5], [0.5])[0]
    assert 0.85 * half_round < d < 1.1 * half_round
    # Hand to hand across the spread arms, crown to a sole: about the span and the height.
    span, height = table.distance([3, 23], [0.5, 0.0], [0.5, 0.5], [4, 5], [0.5, 0.5], [0.5, 0.0])
    assert 1.4 < span < 1.9 and 1.6 < height < 2.0
    # Geodesics are never shorter than the straight line, and close to it for near points.
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(points), 3000), rng.integers(0, len(points), 3000)
    geo = table.distance(part[a], u[a], v[a], part[b], u[b], v[b])
    chord = np.linalg.norm(points[a] - points[b], axis=1)
    assert (geo >= chord - 1e-5).all()
    close = (part[a] == part[b]) & (chord > 2 * SPACING) & (chord < 0.1)
    assert close.sum() > 20 and (geo[close] < 1.5 * chord[close]).all()
