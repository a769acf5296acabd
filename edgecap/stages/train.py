"""The training loop every family shares: AdamW, warm-up + cosine LR, periodic evaluation,
atomic checkpoints, resume from the newest one, CUDA mixed precision and DDP under torchrun.
A family with several training phases (a GAN's two networks) gets one AdamW per
phase, stepped in the phases' order on each batch (ModelFamily.training_phases)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from edgecap.core.console import busy_note, machine_load
from edgecap.core.console import progress as progress_bar

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays
from edgecap.core.config import to_dict
from edgecap.core.io import write_json
from edgecap.core.schedule import cosine_lr
from edgecap.core.weights import save_weights
from edgecap.models import get_family
from edgecap.runs import load_run, write_run_spec
from edgecap.stages import distributed
from edgecap.stages.checkpoint import latest_checkpoint, load_checkpoint, restore_rng, rng_state, save_checkpoint


def learning_rate(step: int, cfg) -> float:
    return cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup_steps)


def device_predictor(model: torch.nn.Module, family, cfg, device: torch.device, amp: bool):
    names = list(family.input_spec(cfg))
    out_names = family.output_names(cfg)

    @torch.no_grad()
    def predict(arrays: Arrays) -> Arrays:
        args = [torch.from_numpy(np.ascontiguousarray(arrays[n])).to(device) for n in names]
        with _autocast(device, amp):
            outs = model(*args)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {n: o.float().cpu().numpy() for n, o in zip(out_names, outs)}

    return predict


def _autocast(device: torch.device, amp: bool):
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return contextlib.nullcontext()


def _check_resumable(run_dir: Path, family_name: str, run_cfg: Any) -> None:
    """A run directory may only be resumed by the same model and config (train.steps may grow)."""
    if not (run_dir / "run.json").exists():
        return
    _, old = load_run(run_dir, expect_family=family_name)
    old_d = to_dict(dataclasses.replace(old, train=dataclasses.replace(old.train, steps=0)))
    new_d = to_dict(dataclasses.replace(run_cfg, train=dataclasses.replace(run_cfg.train, steps=0)))
    if old_d != new_d:
        diff = _dict_diff(old_d, new_d)
        raise EdgecapError(
            f"run directory {run_dir} was trained with a different config ({diff}); resume with the same "
            "config (only train.steps may change) or choose another --out"
        )


def _dict_diff(a: dict, b: dict, prefix: str = "") -> str:
    for k in a:
        if isinstance(a[k], dict):
            d = _dict_diff(a[k], b[k], f"{prefix}{k}.")
            if d:
                return d
        elif a[k] != b[k]:
            return f"{prefix}{k}: {a[k]!r} there, {b[k]!r} now"
    return ""


def train(family_name: str, run_cfg: Any, run_dir: Path, progress: bool = True) -> dict:
    """Train (or resume) `family_name` with `run_cfg` into `run_dir`; returns the final metrics."""
    family = get_family(family_name)
    run_dir = Path(run_dir)
    tcfg = run_cfg.train
    _check_resumable(run_dir, family_name, run_cfg)
    ctx = distributed.setup(tcfg.device)
    try:
        return _train(family, run_cfg, run_dir, ctx, progress)
    finally:
        distributed.teardown(ctx)


def _train(family, run_cfg, run_dir: Path, ctx: distributed.Context, progress: bool) -> dict:
    tcfg = run_cfg.train
    torch.manual_seed(tcfg.seed)
    if ctx.is_main:
        write_run_spec(run_dir, family.name, to_dict(run_cfg))
    train_data = family.load_data(run_cfg, "train")
    val_data = family.load_data(run_cfg, "val")
    model = family.build(run_cfg.model)
    family.prepare_training(model, train_data)
    model.to(ctx.device)
    phases = family.training_phases(model, run_cfg)
    names = [p.name for p in phases]
    if not phases or len(set(names)) != len(names) or not all(p.parameters for p in phases):
        raise EdgecapError(f"{family.name}: training_phases must be one or more phases with distinct names and "
                           f"parameters each, got {names}")
    optimizers = {p.name: torch.optim.AdamW(p.parameters, lr=tcfg.lr * p.lr_scale, betas=p.betas,
                                            weight_decay=tcfg.weight_decay) for p in phases}
    rng = np.random.default_rng(tcfg.seed + ctx.rank)
    step = 0
    ckpt_root = run_dir / "checkpoints"
    last = latest_checkpoint(ckpt_root)
    if last is not None:
        state = load_checkpoint(last, model, optimizers)
        step = state["step"]
        # Rank 0 resumes its exact sampling stream; other ranks re-seed from (seed, rank, step)
        # so that after a resume every rank still draws different batches.
        rng = restore_rng(state["rng"]) if ctx.is_main else np.random.default_rng([tcfg.seed, ctx.rank, step])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    net = family.training_module(model, run_cfg)  # what DDP wraps: one forward returning the loss
    if ctx.distributed:
        # several phases each run part of the model, so some parameters get no gradient in each
        net = DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                                      find_unused_parameters=len(phases) > 1)
    use_scaler = ctx.device.type == "cuda" and tcfg.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    log_path = run_dir / "train_log.jsonl"
    bar = progress_bar(total=tcfg.steps, initial=step, desc=f"train {family.name}", disable=not (progress and ctx.is_main))
    if progress and ctx.is_main and busy_note():
        bar.write(busy_note())
    t0, losses, phase_losses = time.time(), [], {p.name: [] for p in phases}
    while step < tcfg.steps:
        net.train()
        batch = family.sample_batch(train_data, rng, tcfg.batch_size)
        shared: dict = {}
        for phase in phases:  # each optimizer steps in turn on the same batch (one phase for most families)
            optimizer = optimizers[phase.name]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, tcfg) * phase.lr_scale
            with _autocast(ctx.device, tcfg.amp):
                loss = family.phase_loss(net, batch, ctx.device, phase.name, shared)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            if not torch.isfinite(loss):
                raise EdgecapError(f"training diverged at step {step}: the {phase.name} loss is {loss.item()}; "
                                   "lower train.lr")
            phase_losses[phase.name].append(loss.item())
        scaler.update()
        losses.append(phase_losses[phases[0].name][-1])  # the first phase's: the model's own loss
        step += 1
        bar.update(1)
        if step % 20 == 0 or step == 1:  # the load beside the ETA: a slow ETA on a busy machine says why
            load, cores = machine_load()
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.1f}", load=f"{load:.1f}/{cores} cores")
        record = None
        if step % tcfg.eval_every == 0 or step == tcfg.steps:
            record = {"step": step, "train_loss": float(np.mean(losses[-tcfg.eval_every:])), "lr": learning_rate(step - 1, tcfg),
                      "seconds": round(time.time() - t0, 1)}
            if len(phases) > 1:
                record["phase_losses"] = {k: float(np.mean(v[-tcfg.eval_every:])) for k, v in phase_losses.items()}
            if ctx.is_main:
                model.eval()
                record["val"] = family.evaluate(device_predictor(model, family, run_cfg.model, ctx.device, tcfg.amp), val_data, 2048)
                bar.write(f"step {step}: " + ", ".join(f"{k}={v:.2f}" for k, v in record["val"].items() if isinstance(v, float)))
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
        if ctx.is_main and (step % tcfg.checkpoint_every == 0 or step == tcfg.steps):
            save_checkpoint(ckpt_root, step, model, optimizers,
                            {"rng": rng_state(rng), "torch_rng": torch.get_rng_state().tolist()}, tcfg.keep_checkpoints)
        if step % tcfg.checkpoint_every == 0 or step % tcfg.eval_every == 0:
            distributed.barrier(ctx)  # other ranks wait while rank 0 evaluates and saves
    bar.close()
    if not ctx.is_main:
        return {}
    model.eval()
    metrics = family.evaluate(device_predictor(model, family, run_cfg.model, ctx.device, tcfg.amp), val_data, 2048)
    baselines = family.baselines(run_cfg, train_data, val_data)
    save_weights(run_dir / "model.safetensors", model.cpu(), {"family": family.name})
    write_json(run_dir / "model.json", {
        "family": family.name, "steps": step, "device": str(ctx.device), "world_size": ctx.world_size,
        "val": metrics, "baselines": baselines, "config": to_dict(run_cfg),
    })
    return {"val": metrics, "baselines": baselines}
