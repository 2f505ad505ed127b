"""One run: train an MLP with a method, evaluate every epoch, time the phases, record it.

The run owns the timers (forward, backward, index selection, optimizer step,
evaluation); the training step itself is the method's procedure
(``procedure.py``), which times its phases on them, and rules only receive the
selection stopwatch. Reproducibility: three independent seeded random streams,
derived from the run's seed, drive initial weights, batch order and dropout;
their states, and the procedure's (rule state, VR-PGE's masks), are part of
every checkpoint, so a resumed run continues exactly where the uninterrupted
one would have been.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from asym_sweep import provenance, records, resources
from asym_sweep.allocator import keep_freed_memory
from asym_sweep.config import identity
from asym_sweep.data import Splits, load_splits, n_batches, shuffled_batches
from asym_sweep.methods import MethodSpec
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.procedure import Procedure, make_procedure
from asym_sweep.progress import RUN_LOGGER, RunProgress, progress_enabled
from asym_sweep.timing import PHASES, Timers, device_sync

# Offsets that turn one run seed into three independent streams.
SHUFFLE_SEED_OFFSET = 1_000_003
DROPOUT_SEED_OFFSET = 2_000_003


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a run; its checkpoint holds ``epochs_done`` finished epochs."""

    def __init__(self, epochs_done: int) -> None:
        super().__init__(epochs_done)
        self.epochs_done = epochs_done


def _log(message: str) -> None:
    logging.getLogger(RUN_LOGGER).info(message)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} was asked for but CUDA is not available; use device=cpu or device=auto")
    return device


@torch.no_grad()
def evaluate(procedure: Procedure, x: Tensor, y: Tensor, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) in eval mode (dropout off), with the procedure's predictions."""
    if len(y) == 0:
        return float("nan"), float("nan")
    model = procedure.model
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, len(y), batch_size):
        logits = procedure.predict(x[start : start + batch_size])
        target = y[start : start + batch_size]
        correct += (logits.argmax(1) == target).sum()
        loss += F.cross_entropy(logits, target, reduction="sum").double()
    model.train()
    return correct.item() / len(y), loss.item() / len(y)


def train_epoch(procedure: Procedure, splits: Splits, batch_size: int, shuffle: torch.Generator, bar: RunProgress) -> float:
    """One pass over the training set; returns the mean training loss."""
    procedure.model.train()
    total = torch.zeros((), dtype=torch.float64, device=splits.train_x.device)
    for xb, yb in shuffled_batches(splits.train_x, splits.train_y, batch_size, shuffle):
        loss = procedure.step(xb, yb)
        total += loss.double() * len(yb)
        bar.step()
    mean = total.item() / len(splits.train_y)
    if not math.isfinite(mean):
        raise TrainingDiverged(f"training loss became {mean}")
    return mean


def make_adam(params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.Adam:
    """Adam (thesis 9.1.2), fused implementation: the same update in one kernel per step.

    Measured on 2 CPU threads, three 1024x1024 tensors: 1.2 ms per step against
    4.6 ms for the default multi-tensor version, whose elementwise passes made the
    optimizer the largest part of a training step (scripts/bench_backward.py).
    The two agree to float rounding (tests/test_train.py).
    """
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)


def _rng_state(shuffle: torch.Generator, device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], shuffle: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def run(
    cfg: DictConfig,
    run_dir: Path,
    threads: resources.ThreadChoice | None = None,
    log: Callable[[str], None] = _log,
) -> dict[str, Any]:
    """Train one configuration to completion (resuming a checkpoint) and write ``result.json``.

    ``threads``: the torch threads and how many runs the launch runs at once on this machine
    (recorded with the timings); None: ``cfg.threads`` (0: every core), one job.
    """
    choice = threads or resources.choose_threads(int(cfg.threads), 1, resources.available_cores(), None)
    started = time.time()
    loadavg_start = resources.load_average()
    run_load = resources.LoadMeter()
    torch.set_num_threads(choice.threads)
    heap_kept = keep_freed_memory()
    device = resolve_device(cfg.device)
    spec = MethodSpec.from_config(cfg.method)
    arch = parse_arch(cfg.arch)
    run_identity = identity(cfg)

    splits = load_splits(cfg.dataset.name, cfg.dataset.root, cfg.dataset.val_size, cfg.dataset.train_limit).to(device)
    torch.manual_seed(cfg.seed + DROPOUT_SEED_OFFSET)
    shuffle = torch.Generator().manual_seed(cfg.seed + SHUFFLE_SEED_OFFSET)
    # load_splits yields pixels in [0, 1], so the first layer may rank its input without abs
    # (sparse.Needs); checked on the data rather than assumed, since a wrong promise would
    # change what the rules select.
    pixels_nonnegative = len(splits.train_x) == 0 or bool(splits.train_x.min() >= 0)
    model = build_mlp(
        arch, spec.layer_rules(arch.depth + 1), spec.dropout, seed=cfg.seed, nonnegative_pixels=pixels_nonnegative
    ).to(device)
    o = cfg.train.optim
    optimizer = make_adam(model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
    timers = Timers(device_sync(device))
    procedure = make_procedure(model, optimizer, timers, int(cfg.seed))

    history: list[dict[str, Any]] = []
    resumed_at: list[int] = []
    wall_before = 0.0
    state, problem = records.load_checkpoint(run_dir) if cfg.train.checkpoint else (None, None)
    if problem:
        log(f"warning: {problem}; starting this run from scratch")
    elif state is not None and state["identity"] != run_identity:
        log(f"warning: {run_dir / records.CHECKPOINT_FILE} is from other settings; starting from scratch")
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "procedure" in state:
            procedure.load_state_dict(state["procedure"])
        _set_rng_state(state["rng"], shuffle, device)
        history = list(state["history"])
        timers.restore(state["timing"])
        wall_before = state.get("wall_s", 0.0)
        resumed_at = list(state.get("resumed_at", [])) + [state["epoch"]]
        log(f"resuming {run_dir} after epoch {state['epoch']}")

    epochs = cfg.train.epochs
    batches = n_batches(len(splits.train_y), cfg.train.batch_size)
    label = f"{cfg.dataset.name} {arch.name} {spec.tag()} seed{cfg.seed}"
    bar = RunProgress(label, epochs, batches, len(history), progress_enabled(cfg.progress))
    segment_start = started  # wall time includes loading the data and building the model
    try:
        for epoch in range(len(history), epochs):
            bar.start_epoch(epoch)
            before = timers.totals()
            procedure.start_epoch(epoch, epochs)
            epoch_start = time.perf_counter()
            epoch_load = resources.LoadMeter()
            train_loss = train_epoch(procedure, splits, cfg.train.batch_size, shuffle, bar)
            epoch_s = time.perf_counter() - epoch_start
            with timers["eval"].measure():
                val_acc, val_loss = evaluate(procedure, splits.val_x, splits.val_y, cfg.train.eval_batch_size)
                test_acc, test_loss = evaluate(procedure, splits.test_x, splits.test_y, cfg.train.eval_batch_size)
            notes = procedure.epoch_notes()  # the state behind this epoch's numbers (e.g. its k)
            procedure.end_epoch(epoch, {"val_loss": val_loss, "val_acc": val_acc, "train_loss": train_loss})
            after = timers.totals()
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_acc": val_acc,
                    "test_loss": test_loss,
                    "test_acc": test_acc,
                    "train_s": epoch_s,
                    # Cores other processes kept busy during the epoch: > 0 means its times were shared.
                    "other_busy_cores": epoch_load.read(),
                    **{f"{name}_s": after[name] - before[name] for name in PHASES if name != "eval"},
                    **({"method_state": notes} if notes else {}),
                }
            )
            if cfg.train.checkpoint and epoch + 1 < epochs:
                records.save_checkpoint(
                    run_dir,
                    {
                        "schema_version": records.SCHEMA_VERSION,
                        "identity": run_identity,
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "procedure": procedure.state_dict(),
                        "rng": _rng_state(shuffle, device),
                        "history": history,
                        "timing": timers.totals(),
                        "wall_s": wall_before + time.time() - segment_start,
                        "resumed_at": resumed_at,
                    },
                )
            bar.end_epoch(epoch, train_loss, val_acc, test_acc, time.perf_counter() - epoch_start)
    except KeyboardInterrupt:
        # What is on disk: the checkpoint of the last finished epoch (or none when checkpoints are off).
        raise Interrupted(len(history) if cfg.train.checkpoint else 0) from None
    finally:
        bar.close()

    totals = timers.totals()
    final = history[-1]
    result = {
        "schema_version": records.SCHEMA_VERSION,
        "status": "completed",
        "dataset": cfg.dataset.name,
        "arch": arch.name,
        "depth": arch.depth,
        "width": arch.width,
        "method": spec.name,
        "method_tag": spec.tag(),
        "rule": spec.rule,
        "method_params": dict(spec.params),
        "scope": spec.scope,
        "dropout": spec.dropout,
        "sparsify_output": spec.sparsify_output,
        "seed": int(cfg.seed),
        "epochs": int(epochs),
        "batch_size": int(cfg.train.batch_size),
        "n_train": len(splits.train_y),
        "n_val": len(splits.val_y),
        "n_test": len(splits.test_y),
        "steps": batches * epochs,
        "final": {k: final[k] for k in ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc")},
        "history": history,
        "timing": {
            "backward_s": totals["backward"],
            # The thesis' "max-heap" time (9.3) and the rest of backprop ("JVP").
            "select_s": totals["select"],
            "product_s": totals["backward"] - totals["select"],
            "forward_s": totals["forward"],
            "optimizer_s": totals["optimizer"],
            "eval_s": totals["eval"],
            "train_s": sum(h["train_s"] for h in history),
            "wall_s": wall_before + time.time() - segment_start,
        },
        # Counted step by step from what each rule kept (see procedure.Madds).
        "flops": procedure.madds.record(),
        "resumed_at_epochs": resumed_at,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "jobs": choice.jobs,
            "cores": choice.cores,
            "thread_choice": {"reason": choice.reason, "other_busy": choice.other_busy},
            "loadavg_start": loadavg_start,
            "loadavg_end": resources.load_average(),
            # Over this segment of the run (since the last resume): see resources.LoadMeter.
            "other_busy_cores": run_load.read(),
            **provenance.source_revision(),
            "malloc_keeps_freed_memory": heap_kept,
            "host": platform.node(),
            "data_source": splits.source,
        },
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    records.write_json_atomic(run_dir / records.RESULT_FILE, result)
    records.remove_checkpoint(run_dir)
    return result
