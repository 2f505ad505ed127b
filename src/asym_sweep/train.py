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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from asym_sweep import native, provenance, records, resources
from asym_sweep.allocator import keep_freed_memory
from asym_sweep.config import identity
from asym_sweep.data import Splits, load_splits, n_batches, shuffled_batches
from asym_sweep.dropout import helper_masks_agree
from asym_sweep.engine import fused
from asym_sweep.engine.procedure import Procedure, make_procedure
from asym_sweep.methods import MethodConfig
from asym_sweep.model import MLP, Arch, build_mlp, parse_arch
from asym_sweep.progress import RUN_LOGGER, RunProgress, progress_enabled
from asym_sweep.selection import native_ties_agree
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


def train_epoch(
    procedure: Procedure, splits: Splits, batch_size: int, shuffle: torch.Generator, bar: RunProgress
) -> float:
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


def make_adam(
    params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
) -> torch.optim.Adam:
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


@dataclass
class Training:
    """Everything one run holds while it trains."""

    cfg: DictConfig
    run_dir: Path
    device: torch.device
    spec: MethodConfig
    arch: Arch
    splits: Splits
    model: MLP
    optimizer: torch.optim.Optimizer
    timers: Timers
    procedure: Procedure
    shuffle: torch.Generator
    identity: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)
    wall_before: float = 0.0  # wall seconds of the segments before the last resume
    segment_start: float = field(default_factory=time.time)  # includes loading the data and building the model

    def wall_s(self) -> float:
        return self.wall_before + time.time() - self.segment_start

    def parts(self) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
        """The checkpoint: every part of the run it keeps, how it is saved and how restored (listed once)."""
        return {
            "model": (self.model.state_dict, self.model.load_state_dict),
            "optimizer": (self.optimizer.state_dict, self.optimizer.load_state_dict),
            "procedure": (self.procedure.state_dict, self.procedure.load_state_dict),
            "rng": (
                lambda: _rng_state(self.shuffle, self.device),
                lambda s: _set_rng_state(s, self.shuffle, self.device),
            ),
            "history": (lambda: self.history, lambda h: setattr(self, "history", list(h))),
            "timing": (self.timers.totals, self.timers.restore),
            "wall_s": (self.wall_s, lambda w: setattr(self, "wall_before", w)),
            "resumed_at": (lambda: self.resumed_at, lambda r: setattr(self, "resumed_at", list(r))),
        }


def build(cfg: DictConfig, run_dir: Path) -> Training:
    """Load the data, build the model, its optimizer and procedure, seed the random streams."""
    device = resolve_device(cfg.device)
    spec = MethodConfig.from_config(cfg.method)
    arch = parse_arch(cfg.arch)
    splits = load_splits(
        cfg.dataset.name, cfg.dataset.root, cfg.dataset.val_size, cfg.dataset.train_limit, cfg.dataset.scaling
    ).to(device)
    torch.manual_seed(cfg.seed + DROPOUT_SEED_OFFSET)
    shuffle = torch.Generator().manual_seed(cfg.seed + SHUFFLE_SEED_OFFSET)
    # With scaling "unit" load_splits yields pixels in [0, 1], so the first layer may rank its input without abs
    # (gradients.Needs); checked on the data rather than assumed, since a wrong promise would
    # change what the rules select.
    pixels_nonnegative = len(splits.train_x) == 0 or bool(splits.train_x.min() >= 0)
    model, optimizer, timers, procedure = build_learner(cfg, spec, arch, device, pixels_nonnegative)
    return Training(
        cfg, run_dir, device, spec, arch, splits, model, optimizer, timers, procedure, shuffle, identity(cfg)
    )


def build_learner(
    cfg: DictConfig, spec: MethodConfig, arch: Arch, device: torch.device, pixels_nonnegative: bool
) -> tuple[MLP, torch.optim.Optimizer, Timers, Procedure]:
    """The model (initialised from the run's seed), its Adam and the method's procedure."""
    model = build_mlp(
        arch,
        spec.layer_rules(arch.depth + 1),
        spec.dropout,
        seed=cfg.seed,
        nonnegative_pixels=pixels_nonnegative,
        dropout_at=spec.dropout_at,
    ).to(device)
    o = cfg.train.optim
    optimizer = make_adam(model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
    timers = Timers(device_sync(device))
    return model, optimizer, timers, make_procedure(model, optimizer, timers, int(cfg.seed))


def resume(t: Training, log: Callable[[str], None]) -> None:
    """Continue from the run folder's checkpoint, if it holds one of these settings."""
    parts = t.parts()
    state, problem = records.load_checkpoint(t.run_dir, tuple(parts)) if t.cfg.train.checkpoint else (None, None)
    if problem:
        log(f"warning: {problem}; starting this run from scratch")
        return
    if state is None:
        return
    if identity(state["identity"]) != t.identity:  # completed with keys added since it was saved
        log(f"warning: {t.run_dir / records.CHECKPOINT_FILE} is from other settings; starting from scratch")
        return
    for key, (_, restore) in parts.items():
        restore(state[key])
    t.resumed_at.append(state["epoch"])
    log(f"resuming {t.run_dir} after epoch {state['epoch']}")


def train_epochs(t: Training) -> None:
    """Every epoch not yet in the history: train, evaluate, record, checkpoint, report."""
    cfg, epochs = t.cfg, t.cfg.train.epochs
    bar = RunProgress(
        f"{cfg.dataset.name} {t.arch.name} {records.run_tag(cfg)} seed{cfg.seed}",
        epochs,
        n_batches(len(t.splits.train_y), cfg.train.batch_size),
        len(t.history),
        progress_enabled(cfg.progress),
    )
    try:
        for epoch in range(len(t.history), epochs):
            bar.start_epoch(epoch)
            epoch_start = time.perf_counter()
            t.history.append(train_and_evaluate(t, epoch, bar))
            if cfg.train.checkpoint and epoch + 1 < epochs:
                records.save_checkpoint(
                    t.run_dir, t.identity, epoch + 1, {k: save() for k, (save, _) in t.parts().items()}
                )
            h = t.history[-1]
            bar.end_epoch(epoch, h["train_loss"], h["val_acc"], h["test_acc"], time.perf_counter() - epoch_start)
    except KeyboardInterrupt:
        # What is on disk: the checkpoint of the last finished epoch (or none when checkpoints are off).
        raise Interrupted(len(t.history) if cfg.train.checkpoint else 0) from None
    finally:
        bar.close()


def train_and_evaluate(t: Training, epoch: int, bar: RunProgress) -> dict[str, Any]:
    """One epoch's history entry (`records.EPOCH_KEYS`, and the method's state if it has one)."""
    cfg, epochs = t.cfg, t.cfg.train.epochs
    before = t.timers.totals()
    t.procedure.start_epoch(epoch, epochs)
    epoch_start = time.perf_counter()
    epoch_load = resources.LoadMeter()
    train_loss = train_epoch(t.procedure, t.splits, cfg.train.batch_size, t.shuffle, bar)
    epoch_s = time.perf_counter() - epoch_start
    with t.timers["eval"].measure():
        val_acc, val_loss = evaluate(t.procedure, t.splits.val_x, t.splits.val_y, cfg.train.eval_batch_size)
        test_acc, test_loss = evaluate(t.procedure, t.splits.test_x, t.splits.test_y, cfg.train.eval_batch_size)
    notes = t.procedure.epoch_notes()  # the state behind this epoch's numbers (e.g. its k)
    t.procedure.end_epoch(epoch, {"val_loss": val_loss, "val_acc": val_acc, "train_loss": train_loss})
    after = t.timers.totals()
    return {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_s": epoch_s,
        # Cores other processes kept busy during the epoch: > 0 means its times were shared.
        "other_busy_cores": epoch_load.read(),
        # A run resumed on another machine has epochs timed on two CPUs (`run_cpus`).
        "cpu": resources.cpu_description(),
        **{f"{name}_s": after[name] - before[name] for name in PHASES if name != "eval"},
        **({"method_state": notes} if notes else {}),
    }


@dataclass(frozen=True)
class Machine:
    """What the machine was like when the run started (`resources`), recorded with its timings."""

    choice: resources.ThreadChoice
    started: float
    loadavg_start: list[float] | None
    load: resources.LoadMeter
    heap_kept: bool
    compiled_row_topk: bool
    compiled_dropout_mask: bool
    compiled_fused_backward: bool


def claim_machine(choice: resources.ThreadChoice) -> Machine:
    """Set the torch threads and the allocator; load (building if need be) the compiled
    helper now, so that neither its build nor its checks (of ties, of dropout's masks) land in
    a timed step; start measuring the load beside the run."""
    torch.set_num_threads(choice.threads)
    compiled = native.helper() is not None
    native_ties_agree()  # its one-time check, here rather than in the first timed step
    masks = helper_masks_agree()  # the same; it leaves the global generator as it was
    fused_backward = fused.module() is not None  # built here (about 30 s, once per machine), not in a timed step
    started, loadavg, load = time.time(), resources.load_average(), resources.LoadMeter()
    return Machine(choice, started, loadavg, load, keep_freed_memory(), compiled, masks, fused_backward)


def result_record(t: Training, machine: Machine) -> records.Result:
    """The record of a completed run (`records.Result`)."""
    cfg, spec, arch, splits, totals = t.cfg, t.spec, t.arch, t.splits, t.timers.totals()
    epochs = int(cfg.train.epochs)
    device, choice = t.device, machine.choice
    return records.Result(
        status="completed",
        dataset=cfg.dataset.name,
        arch=arch.name,
        method=spec.name,
        seed=int(cfg.seed),
        config=OmegaConf.to_container(cfg, resolve=True),
        depth=arch.depth,
        width=arch.width,
        method_tag=spec.tag(),
        rule=spec.rule,
        method_params=dict(spec.params),
        scope=spec.scope,
        dropout=spec.dropout,
        dropout_at=spec.dropout_at,
        sparsify_output=spec.sparsify_output,
        batch_size=int(cfg.train.batch_size),
        n_train=len(splits.train_y),
        n_val=len(splits.val_y),
        n_test=len(splits.test_y),
        steps=n_batches(len(splits.train_y), cfg.train.batch_size) * epochs,
        epochs=epochs,
        final={k: t.history[-1][k] for k in records.FINAL_KEYS},
        history=t.history,
        timing=records.Timing(
            backward_s=totals["backward"],
            select_s=totals["select"],
            product_s=totals["backward"] - totals["select"],
            forward_s=totals["forward"],
            optimizer_s=totals["optimizer"],
            eval_s=totals["eval"],
            train_s=sum(h["train_s"] for h in t.history),
            wall_s=t.wall_s(),
        ),
        flops=records.Flops(**t.procedure.madds.record()),
        environment=records.Environment(
            torch=torch.__version__,
            python=platform.python_version(),
            device=str(device),
            device_name=torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            threads=torch.get_num_threads(),
            malloc_keeps_freed_memory=machine.heap_kept,
            host=platform.node(),
            data_source=splits.source,
            jobs=choice.jobs,
            cores=choice.cores,
            thread_choice={"reason": choice.reason, "other_busy": choice.other_busy},
            loadavg_start=machine.loadavg_start,
            loadavg_end=resources.load_average(),
            other_busy_cores=machine.load.read(),
            **provenance.source_revision(),
            cpu=run_cpus(t.history),
            compiled_row_topk=machine.compiled_row_topk,
            compiled_dropout_mask=machine.compiled_dropout_mask,
            compiled_fused_backward=machine.compiled_fused_backward,
        ),
        resumed_at_epochs=t.resumed_at,
        started_at=dt.datetime.fromtimestamp(machine.started, dt.timezone.utc).isoformat(timespec="seconds"),
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def run_cpus(history: list[dict[str, Any]]) -> str:
    """The CPUs a run's epochs were timed on, joined with " / " when a resume moved it (the
    report flags such times as not like for like); "?" for epochs checkpointed before epochs
    recorded their CPU."""
    return " / ".join(sorted({str(h.get("cpu") or "?") for h in history})) or resources.cpu_description()


def run(
    cfg: DictConfig,
    run_dir: Path,
    threads: resources.ThreadChoice | None = None,
    log: Callable[[str], None] = _log,
) -> records.Result:
    """Train one configuration to completion (resuming a checkpoint) and write ``result.json``.

    ``threads``: the torch threads and how many runs the launch runs at once on this machine
    (recorded with the timings); None: ``cfg.threads`` (0: every core), one job.
    """
    machine = claim_machine(threads or resources.choose_threads(int(cfg.threads), 1, resources.available_cores(), None))
    t = build(cfg, run_dir)
    t.segment_start = machine.started
    resume(t, log)
    train_epochs(t)
    result = result_record(t, machine)
    records.write_result(run_dir, result)
    records.remove_checkpoint(run_dir)
    return result
