"""The metric networks for synthetic faces: a landmark detector and an identity descriptor, small
CNNs trained on the renderer's exact labels (no pretrained face network can be downloaded here).

- `landmarks(images)` -> (N, L, 2) pixels: regression of the talking heads' LANDMARKS.
- `descriptor(images)` -> (N, P): the identity parameters (standardised), regressed; two images
  of the same synthetic person give nearly the same vector whatever the pose, so 1 - cosine of
  two descriptors is an identity error.

They judge the model and never train with it: trained once per data config (deterministic from
the seed) and cached in `$EDGECAP_CACHE/judges` (default ~/.cache/edgecap/judges). Real faces need real
judges (a landmark model that ships in a package); these are for the synthetic data only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F



def cache_dir() -> Path:
    return Path(os.environ.get("EDGECAP_CACHE") or Path.home() / ".cache" / "edgecap") / "judges"


def _trunk(width: int) -> nn.Sequential:
    layers, cin = [], 3
    for mult in (1, 2, 4, 8):
        layers += [nn.Conv2d(cin, width * mult, 3, 2, 1), nn.BatchNorm2d(width * mult), nn.ReLU(),
                   nn.Conv2d(width * mult, width * mult, 3, 1, 1), nn.BatchNorm2d(width * mult), nn.ReLU()]
        cin = width * mult
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


class Judges(nn.Module):
    finds_data_landmarks = True  # trained on the data's own landmarks: its visibility flags apply

    def __init__(self, landmarks: int, identity_params: int, width: int = 16, eyes: tuple[int, int] = (0, 1)):
        super().__init__()
        self.num_landmarks, self.eyes = landmarks, tuple(eyes)  # eyes: the interocular distance's landmarks
        self.landmark_net = nn.Sequential(_trunk(width), nn.Linear(8 * width, 2 * landmarks))
        self.identity_net = nn.Sequential(_trunk(width), nn.Linear(8 * width, identity_params))
        self.register_buffer("param_mean", torch.zeros(identity_params))
        self.register_buffer("param_std", torch.ones(identity_params))

    @torch.no_grad()
    def landmarks(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) in [0, 1] -> (N, L, 2) pixels."""
        self.eval()
        size = images.shape[-1]
        out = [self.landmark_net(torch.from_numpy(b)).view(len(b), -1, 2) for b in _batches(images)]
        return (torch.cat(out).numpy() * size).astype(np.float64)

    @torch.no_grad()
    def descriptor(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) in [0, 1] -> (N, P) standardised identity parameters."""
        self.eval()
        return torch.cat([self.identity_net(torch.from_numpy(b)) for b in _batches(images)]).numpy().astype(np.float64)


def _batches(images: np.ndarray, size: int = 256):
    for i in range(0, len(images), size):
        yield np.ascontiguousarray(images[i : i + size], dtype=np.float32)


def _degrade(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Half of a batch blurred (Gaussian, sigma 0.5..3 px, one per batch) with a little noise: a
    generator's output is softer than a render, and the judges must read pose and identity from it,
    not sharpness (without this, blurring a true frame by 1.5 px moved the landmarks by a quarter
    of the interocular distance)."""
    sigma = rng.uniform(0.5, 3.0)
    radius = int(np.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-t**2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    blurred = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1),
                       groups=3)
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"),
                       kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    noisy = blurred + 0.02 * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
    pick = torch.from_numpy(rng.random(len(x)) < 0.5).view(-1, 1, 1, 1)
    return torch.where(pick, noisy.clamp(0, 1), x)


def train_judges(images: np.ndarray, landmarks: np.ndarray, identity: np.ndarray, steps: int = 600,
                 batch_size: int = 64, seed: int = 0, width: int = 16, eyes: tuple[int, int] = (0, 1),
                 masks: np.ndarray | None = None) -> Judges:
    """images (N, 3, S, S) in [0, 1]; landmarks (N, L, 3) px with visibility; identity (N, P);
    masks (N, S, S) foreground: when given, half of each batch has its background removed, as in
    the model's outputs, so the judges read both."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size = images.shape[-1]
    judges = Judges(landmarks.shape[1], identity.shape[1], width, eyes)
    mean, std = identity.mean(0), identity.std(0) + 1e-6
    judges.param_mean.copy_(torch.from_numpy(mean).float())
    judges.param_std.copy_(torch.from_numpy(std).float())
    target_id = torch.from_numpy((identity - mean) / std).float()
    target_lm = torch.from_numpy(landmarks[..., :2] / size).float()
    visible = torch.from_numpy(landmarks[..., 2:3]).float()
    opt = torch.optim.AdamW(judges.parameters(), lr=2e-3, weight_decay=1e-4)
    judges.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 2e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = torch.from_numpy(rng.integers(0, len(images), batch_size))
        x = torch.from_numpy(np.ascontiguousarray(images[idx.numpy()], dtype=np.float32))
        if masks is not None:
            cut = torch.from_numpy(masks[idx.numpy()][:, None].astype(np.float32))
            keep = torch.from_numpy(rng.random(batch_size) < 0.5).view(-1, 1, 1, 1)
            x = torch.where(keep, x, x * cut)
        x = _degrade(x, rng)
        lm = judges.landmark_net(x).view(batch_size, -1, 2)
        loss = (F.smooth_l1_loss(lm, target_lm[idx], reduction="none", beta=0.01) * visible[idx]).mean()  # seen only
        loss = loss + F.mse_loss(judges.identity_net(x), target_id[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return judges.eval()


def cached_judges(key: dict, make_training_set, landmarks: int, identity_params: int, steps: int = 600,
                  width: int = 16, eyes: tuple[int, int] = (0, 1)) -> Judges:
    """The judges for a data config (`key`, JSON-able), trained on `make_training_set()` ->
    (images, landmarks, identity[, masks]) the first time and read from the cache after. PyTorch's
    global random state is left as it was, so a model built after them starts the same whether
    or not they were cached."""
    with torch.random.fork_rng():
        return _cached_judges(key, make_training_set, landmarks, identity_params, steps, width, eyes)


def _cached_judges(key, make_training_set, landmarks, identity_params, steps, width, eyes) -> Judges:
    from edgecap.core.weights import load_weights, save_weights

    spec = {**key, "steps": steps, "width": width, "landmarks": landmarks, "identity_params": identity_params,
            "eyes": list(eyes), "version": 3}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{digest}.safetensors"
    if path.exists():
        judges = Judges(landmarks, identity_params, width, eyes)
        load_weights(path, judges)  # a corrupt cache file is named in a one-line error
        return judges.eval()
    images, marks, identity, *masks = make_training_set()
    judges = train_judges(images, marks, identity, steps=steps, width=width, eyes=eyes,
                          masks=masks[0] if masks else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(path, judges, {"spec": json.dumps(spec)})
    return judges
