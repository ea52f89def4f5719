"""Predictive distributions of a trained network: the deterministic pass, MC dropout's passes and the single
pass read over time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from snnlib.experiment import data as D
from snnlib.experiment.config import stream_seed
from snnlib.experiment.training import EVAL_BATCH
from snnlib.model import functional as SF
from snnlib.model.network import SRMNetwork
from snnlib.uncertainty.metrics import mutual_information, softmax

DEFAULT_PASSES = 50



def pass_seed(mask_seed: int, pass_index: int, batch_start: int) -> int:
    """The seed of torch's generator for the test-time masks of pass ``pass_index`` on the
    batch that starts at sample ``batch_start`` (derived from ``mask_seed``, unrelated to the
    training seeds' streams)."""
    return stream_seed(mask_seed, f"uncertainty/{pass_index}/{batch_start}")


@contextlib.contextmanager
def dropout_on(model: SRMNetwork) -> Iterator[SRMNetwork]:
    """The model in training mode (dropout on, the only train/eval-dependent part of the
    network) for the block, restored afterwards; no gradients are taken."""
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _forked_rng(device: torch.device) -> Iterator[None]:
    """Masks are drawn from torch's global generator: fork it, so the caller's stream is untouched."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield



def _batches(dataset: D.EncodedDataset, batch_size: int):
    device = dataset.times.device
    for start in range(0, len(dataset), batch_size):
        index = torch.arange(start, min(start + batch_size, len(dataset)), device=device)
        yield start, *dataset.batch(index)



def _events(model: SRMNetwork, times: torch.Tensor, hidden_spikes: torch.Tensor) -> torch.Tensor:
    """Synaptic events per sample of one pass ``(B,)``: input spikes x K x hidden + hidden
    spikes x K x outputs (the records' ``test_synaptic_events``)."""
    c = model.config
    inputs = (times < c.T).sum(1) if times.dtype == torch.uint8 else (times != 0).sum((0, 2))
    hidden = hidden_spikes.sum((0, 2))
    return (inputs.double() * c.K * c.hidden + hidden.double() * c.K * c.out_features).cpu()



def output_potential_dense(model: SRMNetwork, spikes: torch.Tensor) -> torch.Tensor:
    """The readout's potentials ``(T, N, C)`` for hidden spikes ``(T, N, H)`` (after any dropout),
    eq 3 as one dense product, as the network computes it in training: about twice as fast on
    the CPU as the event lists of a raster that changes every pass, the same sums."""
    out = model.output
    current = SF.apply_delays(SF.dense_bags(spikes, out.weight_events), out.delays_list)
    return SF.psp(current, out.kernel(current.shape[0]))



def _stochastic_potentials(model: SRMNetwork, times: torch.Tensor, order: torch.Tensor,
                           seeds: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For each seed: the output potentials ``(T, B, C)`` and the hidden spikes ``(T, B, H)`` of
    one pass with the model's dropout on, its masks drawn after ``torch.manual_seed(seed)``.

    The same computation as ``model.train(); model(times, order)`` after the same seeding (the
    same masks, the same spikes; tested), arranged for many passes: with dropout on the
    current or on the hidden spikes, the hidden layer's current before dropout (and for the
    hidden site its spikes) does not depend on the mask and is computed once for all seeds;
    the readout takes the dense form of eq 3 (:func:`output_potential_dense`).
    """
    c = model.config
    dropping = c.dropout != "none" and c.p > 0
    with dropout_on(model):
        if c.site == "input":
            for seed in seeds:
                torch.manual_seed(seed)
                spikes, _ = model.hidden_spikes(times, order)
                yield output_potential_dense(model, spikes), spikes
            return
        current, _ = model.hidden_current(times, order)  # no dropout at these sites, no random draw
        kernel = model.hidden.kernel(current.shape[0])
        fixed = model.hidden.fire(SF.psp(current, kernel)) if c.site == "hidden" else None
        for seed in seeds:
            torch.manual_seed(seed)
            if fixed is None:  # site "current": SRMNetwork.hidden_spikes in training
                spikes = model.hidden.fire(SF.psp(model.dropout(current) if dropping else current, kernel))
                to_output = spikes
            else:  # site "hidden": SRMNetwork.output_potential in training
                spikes = fixed
                to_output = model.dropout(spikes) if dropping else spikes
            yield output_potential_dense(model, to_output), spikes


@dataclass
class Passes:
    """The outcome of :func:`sample_passes` on one data set.

    ``logits`` ``(P, N, C)``: each stochastic pass's logits; ``events`` ``(P, N)``: synaptic
    events per sample and pass; ``time_probs`` and ``time_mutual_information``: the single-pass
    estimates of :func:`time_average_probs` from pass 0, per readout, the per-step probabilities
    averaged ``(N, C)`` and their mutual information over the steps ``(N,)``; ``wall_time_s``.
    """

    logits: torch.Tensor
    events: torch.Tensor
    time_probs: dict[str, np.ndarray]
    time_mutual_information: dict[str, np.ndarray]
    wall_time_s: float

    def probs(self) -> np.ndarray:
        """Per-pass probabilities ``(P, N, C)`` (float64)."""
        return softmax(self.logits)


TIME_READOUTS = ("running_max", "potential")



def time_average_probs(potential: torch.Tensor, readout_scale: float, readout: str = "running_max"
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The single-pass estimate from one pass's output potentials ``(T, N, C)``: the softmax of
    a per-step readout, averaged over the steps of each sample from its readout's onset.

    Sun, Yin and Bohte (2023) read an SNN's output at every time step as one prediction and,
    with a dropout mask drawn afresh at every step, the T steps of one pass as T samples of
    MC dropout ("average over time"). Their networks are trained on every step's output. This
    network is not: its logits are ``readout_scale * max_t u(t)``, the peak over the whole
    window of each output potential, so ``u(t)`` at one step is not a prediction of the
    network, and each hidden neuron fires once, so one pass draws one spike pattern, not T.
    Two readings:

    * ``running_max`` (the primary one): step ``t``'s prediction is the network's own readout
      on the window cut at ``t``, ``softmax(readout_scale * max_{s <= t} u(s))``, the answer the
      network would give if it had to answer at step ``t``. The last step is exactly the pass's
      logits, so the estimate ends at the pass's prediction, and the average weighs each
      answer by how long it has stood: an answer reached early and kept counts more than one
      that only wins at the last steps. The steps are nested (each sees more of the same
      pass), not exchangeable samples: their spread measures how late and how close the
      decision was, not the spread over masks.
    * ``potential``: step ``t``'s prediction is ``softmax(readout_scale * u(t))``, the literal
      per-step output of the paper; it peaks and decays with the kernel and was never trained
      to be a prediction.

    Steps before the first non-zero output potential of a sample (no hidden spike has reached
    the readout yet) are left out: every readout is 0 there and its softmax uniform, and the
    number of such steps depends on the input's latency, not on the network's uncertainty. A
    sample whose outputs stay at 0 uses the last step only (the uniform distribution, as the
    deterministic network gives it).

    Returns the averaged probabilities ``(N, C)`` and the mutual information over the used
    steps ``(N,)`` (:func:`mutual_information`). Cost: one forward pass (the single-pass estimate
    uses the potentials of a pass that runs anyway) and ``T`` softmaxes of ``C`` values.
    """
    if readout not in TIME_READOUTS:
        raise ValueError(f"unknown readout {readout!r}; allowed: {', '.join(TIME_READOUTS)}")
    u = potential.detach().double()
    T, N, _ = u.shape
    per_step = torch.cummax(u, dim=0).values.clamp(min=0.0) if readout == "running_max" else u
    # the running maximum starts from the zeros before the first input, as amax over the window does
    steps = torch.arange(T, device=u.device)[:, None]
    active = (u != 0).any(2)  # (T, N)
    onset = torch.where(active.any(0), active.float().argmax(0), torch.full((N,), T - 1, device=u.device))
    weights = (steps >= onset[None]).double()  # (T, N)
    probs = torch.softmax(readout_scale * per_step, dim=2)
    mean = (weights[..., None] * probs).sum(0) / weights.sum(0)[:, None]
    mi = mutual_information(probs.cpu().numpy(), weights.cpu().numpy())
    return mean.cpu().numpy(), mi


@torch.no_grad()
def deterministic_logits(model: SRMNetwork, dataset: D.EncodedDataset, batch_size: int = EVAL_BATCH
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, C)`` with dropout off (eval mode) and synaptic events per sample ``(N,)``."""
    was_training = model.training
    model.eval()
    logits, events = [], []
    try:
        for _, times, order, _ in _batches(dataset, batch_size):
            out = model(times, order)
            logits.append(out.logits.float().cpu())
            events.append(_events(model, times, out.hidden_spikes))
    finally:
        model.train(was_training)
    C = model.config.out_features
    return (torch.cat(logits) if logits else torch.zeros(0, C)), (torch.cat(events) if events else torch.zeros(0))


@torch.no_grad()
def sample_passes(model: SRMNetwork, dataset: D.EncodedDataset, passes: int, mask_seed: int = 0,
                  batch_size: int = EVAL_BATCH, time_average: bool = True) -> Passes:
    """``passes`` stochastic passes over ``dataset`` with the model's dropout on (MC dropout),
    and from pass 0 the single-pass estimates of :func:`time_average_probs` (both readouts).

    Pass ``k`` on the batch starting at sample ``s`` draws its masks after
    ``torch.manual_seed(pass_seed(mask_seed, k, s))`` (the caller's generator state is saved
    and restored), so the result depends on the seed and the batch size only: pass ``k`` is
    the same whatever ``passes`` is, and a model without dropout gives ``passes`` copies of
    the deterministic logits. The seeds do not depend on the data set: the test set and a
    shifted copy of it see the same masks batch for batch (common random numbers, which
    sharpen the comparison of the two).
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    start_time = time.perf_counter()
    device = dataset.times.device
    c = model.config
    logits, events = [], []
    time_parts: dict[str, list] = {r: [] for r in TIME_READOUTS}
    mi_parts: dict[str, list] = {r: [] for r in TIME_READOUTS}
    with _forked_rng(device):
        for start, times, order, _ in _batches(dataset, batch_size):
            seeds = [pass_seed(mask_seed, k, start) for k in range(passes)]
            batch_logits, batch_events = [], []
            for k, (potential, spikes) in enumerate(_stochastic_potentials(model, times, order, seeds)):
                batch_logits.append((c.readout_scale * potential.amax(0)).float().cpu())
                batch_events.append(_events(model, times, spikes))
                if k == 0 and time_average:
                    for readout in TIME_READOUTS:
                        p, mi = time_average_probs(potential, c.readout_scale, readout)
                        time_parts[readout].append(p)
                        mi_parts[readout].append(mi)
            logits.append(torch.stack(batch_logits))
            events.append(torch.stack(batch_events))
    C = c.out_features
    return Passes(
        logits=torch.cat(logits, dim=1) if logits else torch.zeros(passes, 0, C),
        events=torch.cat(events, dim=1) if events else torch.zeros(passes, 0),
        time_probs={r: np.concatenate(v) for r, v in time_parts.items() if v},
        time_mutual_information={r: np.concatenate(v) for r, v in mi_parts.items() if v},
        wall_time_s=time.perf_counter() - start_time,
    )



def mc_dropout(model: SRMNetwork, dataset: D.EncodedDataset, passes: int = DEFAULT_PASSES, mask_seed: int = 0,
               batch_size: int = EVAL_BATCH) -> np.ndarray:
    """MC dropout's per-pass probabilities ``(passes, N, C)``; their mean over the first ``n``
    passes is the prediction with ``n`` samples (see :func:`sample_passes`)."""
    return sample_passes(model, dataset, passes, mask_seed, batch_size, time_average=False).probs()



def single_pass(model: SRMNetwork, dataset: D.EncodedDataset, mask_seed: int = 0, readout: str = "running_max",
                batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """The single-pass ("average over time") estimate ``(N, C)`` and its mutual information over
    steps ``(N,)``, from the pass that is MC dropout's pass 0 (see :func:`time_average_probs`)."""
    if readout not in TIME_READOUTS:
        raise ValueError(f"unknown readout {readout!r}; allowed: {', '.join(TIME_READOUTS)}")
    result = sample_passes(model, dataset, 1, mask_seed, batch_size)
    return result.time_probs[readout], result.time_mutual_information[readout]
