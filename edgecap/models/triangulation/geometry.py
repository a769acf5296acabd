"""Pinhole camera geometry in numpy (float64): projection matrices, projection, and synthetic rigs.

Conventions: world units are millimetres, world z points up; a camera looks along its +z with
x right and y down (OpenCV); P = K [R | t] maps world points to pixels, with t = -R c for a
camera centred at c.
"""

from __future__ import annotations

import numpy as np


def intrinsics(focal_px: float, image_size: tuple[int, int] = (1000, 1000)) -> np.ndarray:
    """K (3, 3) with square pixels and the principal point at the image centre; image_size is (w, h)."""
    w, h = image_size
    return np.array([[focal_px, 0.0, w / 2], [0.0, focal_px, h / 2], [0.0, 0.0, 1.0]])


def look_at(centre, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), t (3,)) of a camera at `centre` looking at `target`, image y pointing against `up`."""
    centre, target, up = (np.asarray(v, np.float64) for v in (centre, target, up))
    forward = target - centre
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    R = np.stack([right, np.cross(forward, right), forward])
    return R, -R @ centre


def projection_matrix(K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P = K [R | t], (3, 4); K, R, t may carry matching leading dims."""
    return np.asarray(K) @ np.concatenate([np.asarray(R), np.asarray(t)[..., None]], axis=-1)


def project(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) of world points X (..., 3) through P (..., 3, 4) (broadcast)."""
    Xh = np.concatenate([X, np.ones(X.shape[:-1] + (1,))], axis=-1)
    x = (np.asarray(P) @ Xh[..., None])[..., 0]
    return x[..., :2] / x[..., 2:3]


def camera_centres(P: np.ndarray) -> np.ndarray:
    """Centres (..., 3): the right null vectors of P, c = -P[:, :3]^-1 P[:, 3]."""
    return -np.linalg.solve(P[..., :3], P[..., 3:])[..., 0]


def arc_rig(cameras: int, angle_deg: float, distance_mm: float = 3000.0, focal_px: float = 1000.0,
            image_size: tuple[int, int] = (1000, 1000), height_mm: float = 0.0,
            target=(0.0, 0.0, 0.0)) -> np.ndarray:
    """P (cameras, 3, 4): cameras on a horizontal arc around `target`, `angle_deg` apart (the
    arc centred on azimuth 0), `distance_mm` away and `height_mm` above it, each looking at it."""
    K = intrinsics(focal_px, image_size)
    target = np.asarray(target, np.float64)
    out = []
    for c in range(cameras):
        azimuth = np.deg2rad((c - (cameras - 1) / 2) * angle_deg)
        centre = target + np.array([distance_mm * np.cos(azimuth), distance_mm * np.sin(azimuth), height_mm])
        out.append(projection_matrix(K, *look_at(centre, target)))
    return np.stack(out)


def random_rig(rng: np.random.Generator, cameras: int, angle_deg: float, distance_mm=(2000.0, 4000.0),
               focal_px=(800.0, 1500.0), image_size: tuple[int, int] = (1000, 1000),
               jitter_mm: float = 150.0) -> np.ndarray:
    """P (cameras, 3, 4): an `arc_rig` turned by a random azimuth, neighbours `angle_deg` apart,
    each camera at its own random distance, focal length and height (+-300 mm), aimed at a point
    within `jitter_mm` of the origin, so that no two cameras are alike."""
    out = []
    phase = rng.uniform(-np.pi, np.pi)  # the whole arc turned about the vertical axis
    for c in range(cameras):
        azimuth = phase + np.deg2rad((c - (cameras - 1) / 2) * angle_deg)
        d = rng.uniform(*distance_mm)
        centre = np.array([d * np.cos(azimuth), d * np.sin(azimuth), rng.uniform(-300, 300)])
        K = intrinsics(rng.uniform(*focal_px), image_size)
        out.append(projection_matrix(K, *look_at(centre, rng.uniform(-jitter_mm, jitter_mm, 3))))
    return np.stack(out)


def random_joints(rng: np.random.Generator, batch: int, joints: int, half_extent_mm=(400.0, 400.0, 900.0),
                  centre_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """World points (batch, joints, 3) uniform in a person-sized box around `centre_mm`."""
    return np.asarray(centre_mm) + rng.uniform(-1.0, 1.0, (batch, joints, 3)) * np.asarray(half_extent_mm)
