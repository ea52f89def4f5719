"""The SRM layer (eqs 1-3) against a dense reference, first-spike semantics, the network.

The reference below is the plain sum of eq 1 over time, inputs and sub-synapses,
``v[t, n, h] = sum_s sum_i sum_k W[h, i, k] * eps(t - s - d_k) * raster[s, n, i]``,
written with nothing from snnlib, in float64.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from snnlib import KINDS, SITES, SRMLayer, SRMNetwork, events_from_raster, events_from_times, times_to_raster
from snnlib.model.functional import SpikeEvents, event_current, first_spikes

# ---------------------------------------------------------------- dense reference


def eps_ref(a: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq 2 written out."""
    a = a.double()
    return torch.where(a > 0, a / tau * torch.exp(1 - a / tau), torch.zeros_like(a))


def dense_potential(raster: torch.Tensor, W: torch.Tensor, delays: list[int], tau: float) -> torch.Tensor:
    """Eq 1 as one einsum over t, s, i, k: raster (T, N, I), W (H, I, K) -> v (T, N, H)."""
    T = raster.shape[0]
    t = torch.arange(T)[:, None, None]
    s = torch.arange(T)[None, :, None]
    d = torch.tensor(delays)[None, None, :]
    kernel = eps_ref(t - s - d, tau)  # (T, T, K): eps(t - s - d_k)
    return torch.einsum("tsk,sni,hik->tnh", kernel, raster.double(), W.double())


def loop_potential(raster: torch.Tensor, W: torch.Tensor, delays: list[int], tau: float) -> torch.Tensor:
    """Eq 1 with explicit loops (slow; used on tiny inputs to check the einsum)."""
    T, N, n_in = raster.shape
    H = W.shape[0]
    v = torch.zeros(T, N, H, dtype=torch.float64)
    for t in range(T):
        for s in range(T):
            for k, d in enumerate(delays):
                e = eps_ref(torch.tensor(float(t - s - d)), tau).item()
                if e == 0.0:
                    continue
                for n in range(N):
                    for i in range(n_in):
                        if raster[s, n, i] != 0:
                            v[t, n] += W[:, i, k].double() * e * raster[s, n, i].double()
    return v


def random_raster(T: int, N: int, n_in: int, rate: float = 0.3) -> torch.Tensor:
    """A 0/1 raster with several spikes per input (rate * T on average)."""
    return (torch.rand(T, N, n_in) < rate).float()


# (K, delays, T, tau); delays None means the default 0, 1, ..., K - 1
LAYER_CASES = [
    (1, [0], 8, 3.0),
    (4, None, 12, 3.0),
    (3, [0, 3, 7], 16, 2.0),
    (2, [5, 1], 10, 1.5),
    (4, [0, 2, 4, 6], 24, 3.0),
    (3, [0, 0, 2], 9, 4.0),
]
CASE_IDS = [f"K{K}-d{delays}-T{T}-tau{tau}" for K, delays, T, tau in LAYER_CASES]


def make_layer(K, delays, tau, n_in=7, n_out=5) -> SRMLayer:
    return SRMLayer(n_in, n_out, K=K, delays=delays, tau=tau, init_gain=2.0)


def layer_delays(layer: SRMLayer) -> list[int]:
    return [int(d) for d in layer.delays]


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    """float32 result vs float64 reference, tolerance relative to the reference's scale."""
    scale = max(b.abs().max().item(), 1.0)
    return torch.allclose(a.double(), b.double(), rtol=1e-4, atol=tol * scale)


def test_dense_reference_matches_explicit_loops():
    """Sanity check of the reference itself: einsum == loops of eq 1 on a tiny input."""
    raster = random_raster(7, 2, 3, rate=0.4)
    raster[2, 1, 0] = 0.5  # a weighted event
    W = torch.randn(4, 3, 2)
    delays = [0, 3]
    assert torch.allclose(dense_potential(raster, W, delays, 2.0), loop_potential(raster, W, delays, 2.0),
                          rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- layer attributes

def test_layer_attribute_shapes():
    """weight (out, in, K), delays (K,), scalar tau and threshold; weight views weight_events."""
    layer = SRMLayer(9, 6, K=3, delays=[0, 2, 5], tau=2.5, threshold=1.5)
    assert layer.weight.shape == (6, 9, 3)
    assert layer.delays.tolist() == [0, 2, 5]
    assert layer.tau == 2.5 and layer.threshold == 1.5
    with torch.no_grad():
        layer.weight_events[1, 4, 2] = 123.0
    assert layer.weight[2, 4, 1].item() == 123.0
    assert [p.shape for p in layer.parameters()] == [torch.Size([3, 9, 6])]


def test_layer_default_delays_are_consecutive_steps():
    assert SRMLayer(3, 2, K=4).delays.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs,match", [
    (dict(K=3, delays=[0, 1]), "delays"),
    (dict(K=2, delays=[0, -1]), "delays"),
    (dict(tau=0.0), "tau"),
    (dict(tau=-2.0), "tau"),
    (dict(threshold=0.0), "threshold"),
    (dict(threshold=-1.0), "threshold"),
])
def test_layer_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SRMLayer(4, 3, **kwargs)


def test_layer_rejects_delay_longer_than_window():
    """A delay d_k >= T cannot be represented in a window of T steps."""
    layer = SRMLayer(4, 3, K=2, delays=[0, 8])
    with pytest.raises(ValueError, match="T=8"):
        layer.potential(random_raster(8, 2, 4))


def test_event_current_refuses_more_events_than_int32_indices_hold():
    """2^30 events x 4 delays would overflow the int32 indices: a clear error, not wrong sums."""
    huge = torch.zeros(1, dtype=torch.int32).expand(2**30)  # no memory behind it
    offsets = torch.zeros(8, dtype=torch.int32)
    events = SpikeEvents(1, 8, 4, huge, offsets, huge, offsets[:4])
    with pytest.raises(ValueError, match="int32"):
        event_current(events, torch.zeros(4, 4, 3), [0, 1, 2, 3])


# ---------------------------------------------------------------- eq 1 vs the reference

@pytest.mark.parametrize("K,delays,T,tau", LAYER_CASES, ids=CASE_IDS)
def test_potential_event_path_matches_dense_reference(K, delays, T, tau):
    """Eq 1: the event-driven potential of a 0/1 raster equals the dense sum."""
    layer = make_layer(K, delays, tau)
    raster = random_raster(T, 3, 7)
    assert (raster.sum(0) >= 2).any(), "want inputs with several spikes"
    expected = dense_potential(raster, layer.weight.detach(), layer_delays(layer), tau)
    with torch.no_grad():
        assert close(layer.potential(raster), expected)
        assert close(layer.potential(events_from_raster(raster)), expected)


@pytest.mark.parametrize("K,delays,T,tau", LAYER_CASES, ids=CASE_IDS)
def test_potential_dense_path_matches_dense_reference(K, delays, T, tau):
    """A raster that needs a gradient takes the dense product; same eq 1 values."""
    layer = make_layer(K, delays, tau)
    raster = random_raster(T, 3, 7).requires_grad_()
    expected = dense_potential(raster.detach(), layer.weight.detach(), layer_delays(layer), tau)
    assert close(layer.potential(raster), expected)


@pytest.mark.parametrize("K,delays,T,tau", LAYER_CASES, ids=CASE_IDS)
def test_potential_weight_gradient_event_path_matches_reference(K, delays, T, tau):
    """d(sum G * v)/dW through the event path equals autograd on the dense reference."""
    layer = make_layer(K, delays, tau)
    raster = random_raster(T, 3, 7)
    G = torch.randn(T, 3, 5)
    (layer.potential(raster) * G).sum().backward()
    W = layer.weight.detach().double().requires_grad_()
    (dense_potential(raster, W, layer_delays(layer), tau) * G.double()).sum().backward()
    assert close(layer.weight_events.grad.permute(2, 1, 0), W.grad)


@pytest.mark.parametrize("K,delays,T,tau", LAYER_CASES, ids=CASE_IDS)
def test_potential_gradients_dense_path_match_reference(K, delays, T, tau):
    """Through the dense path both the weight and the raster gradients match the reference."""
    layer = make_layer(K, delays, tau)
    raster = random_raster(T, 3, 7).requires_grad_()
    G = torch.randn(T, 3, 5)
    (layer.potential(raster) * G).sum().backward()
    W = layer.weight.detach().double().requires_grad_()
    ref_raster = raster.detach().double().requires_grad_()
    (dense_potential(ref_raster, W, layer_delays(layer), tau) * G.double()).sum().backward()
    assert close(layer.weight_events.grad.permute(2, 1, 0), W.grad)
    assert close(raster.grad, ref_raster.grad)


@pytest.mark.parametrize("K,delays,T,tau", LAYER_CASES[1:4], ids=CASE_IDS[1:4])
def test_weighted_events_match_reference(K, delays, T, tau):
    """Non-binary rasters (per-event weights, e.g. after input dropout) also follow eq 1."""
    layer = make_layer(K, delays, tau)
    raster = random_raster(T, 3, 7) * (torch.rand(T, 3, 7) * 4 - 2)
    events = events_from_raster(raster)
    assert events.fwd_values is not None
    G = torch.randn(T, 3, 5)
    (layer.potential(raster) * G).sum().backward()
    W = layer.weight.detach().double().requires_grad_()
    expected = dense_potential(raster, W, layer_delays(layer), tau)
    (expected * G.double()).sum().backward()
    with torch.no_grad():
        assert close(layer.potential(events), expected.detach())
    assert close(layer.weight_events.grad.permute(2, 1, 0), W.grad)


def test_silent_input_gives_zero_potential():
    """No input spike at all: the potential is exactly zero (empty event lists work)."""
    layer = make_layer(3, [0, 1, 2], 3.0)
    silent = torch.full((4, 7), 255, dtype=torch.uint8)
    assert events_from_times(silent, 10).count == 0
    assert torch.equal(layer.potential(events_from_times(silent, 10)), torch.zeros(10, 4, 5))
    assert torch.equal(layer.potential(torch.zeros(10, 4, 7)), torch.zeros(10, 4, 5))


def test_current_is_the_delayed_weighted_spike_sum():
    """Eq 3: Z[t, n, h] = sum_i sum_k W[h, i, k] * raster[t - d_k, n, i] (no kernel)."""
    layer = make_layer(3, [0, 3, 7], 2.0)
    raster = random_raster(12, 3, 7)
    W = layer.weight.detach().double()
    expected = torch.zeros(12, 3, 5, dtype=torch.float64)
    for k, d in enumerate([0, 3, 7]):
        expected[d:] += torch.einsum("sni,hi->snh", raster[:12 - d].double(), W[:, :, k])
    with torch.no_grad():
        assert close(layer.current(raster), expected)


def test_layer_works_in_float64():
    """nn.Module.double() should give a float64 layer whose potential matches eq 1."""
    layer = make_layer(3, [0, 3, 7], 2.0).double()
    raster = random_raster(12, 3, 7).double()
    expected = dense_potential(raster, layer.weight.detach(), [0, 3, 7], 2.0)
    assert torch.allclose(layer.potential(raster), expected, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- event lists

EVENT_FIELDS = ("fwd_index", "fwd_offsets", "bwd_index", "bwd_offsets")


def assert_same_events(a, b) -> None:
    assert (a.n_samples, a.T, a.in_features) == (b.n_samples, b.T, b.in_features)
    for name in EVENT_FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.fwd_values is None and b.fwd_values is None
    assert a.bwd_values is None and b.bwd_values is None


@pytest.mark.parametrize("T", [1, 5, 12, 24])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_from_times_equal_events_from_raster(T, seed):
    """Times -> events gives the same event lists as times -> raster -> events, with
    silent inputs (255), times >= T, a fully silent sample and a fully silent input."""
    g = torch.Generator().manual_seed(seed)
    times = torch.randint(0, T + 4, (6, 9), generator=g).to(torch.uint8)
    times[torch.rand(6, 9, generator=g) < 0.2] = 255
    times[2] = 255  # a sample with no spike
    times[:, 4] = 255  # an input that never fires
    expected = events_from_raster(times_to_raster(times, T))
    assert_same_events(events_from_times(times, T), expected)
    order = torch.sort(times.long(), dim=1, stable=True).indices
    assert_same_events(events_from_times(times, T, order), expected)


def test_events_from_times_when_every_input_fires():
    """The all-inputs-fire case (a separate code path) gives the same event lists."""
    times = torch.randint(0, 10, (5, 8)).to(torch.uint8)
    expected = events_from_raster(times_to_raster(times, 10))
    assert expected.count == 40
    assert_same_events(events_from_times(times, 10), expected)


def test_almost_fully_firing_batch_keeps_silent_inputs_past_the_window():
    """A batch with few silent inputs keeps them as events of step T (no compaction):
    the event count, the current and the weight gradient are exactly those of the
    compacted lists, including spikes whose delayed step leaves the window."""
    g = torch.Generator().manual_seed(3)
    T, delays = 10, [0, 3, 7]
    times = torch.randint(0, T, (6, 9), generator=g).to(torch.uint8)
    times[0, 2] = times[4, 7] = 255  # 2 of 54 inputs silent
    times[1, :3] = T - 1  # late spikes: t + d_k >= T for the longer delays
    grid = events_from_times(times, T)
    compact = events_from_raster(times_to_raster(times, T))
    assert grid.n_silent == 2 and compact.n_silent == 0
    assert grid.count == compact.count == 52
    layer = make_layer(3, delays, 2.0, n_in=9)
    G = torch.randn(T, 6, 5, generator=g)
    results = []
    for events in (grid, compact):
        layer.weight_events.grad = None
        current = layer.current(events)
        (current * G).sum().backward()
        results.append((current.detach(), layer.weight_events.grad.clone()))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_events_from_raster_keeps_event_values():
    """A non-binary raster yields its nonzero entries as per-event values."""
    raster = torch.zeros(3, 1, 2)
    raster[0, 0, 1], raster[2, 0, 0] = 2.0, -0.5
    ev = events_from_raster(raster)
    assert ev.count == 2
    assert ev.fwd_index.tolist() == [1, 0]
    assert ev.fwd_values.tolist() == [2.0, -0.5]


# ---------------------------------------------------------------- first-spike semantics

def test_first_spikes_hand_made_potentials():
    """A neuron fires once, at the first step with v >= theta (equality counts); never if
    the threshold is never reached."""
    v = torch.tensor([
        [0.2, 0.5, 1.0, 1.5, 0.3, 2.0],  # reaches theta = 1 exactly at step 2
        [0.9, 0.99, 0.5, 0.0, -3.0, 0.999],  # never
        [1.2, 0.0, 5.0, 5.0, 5.0, 5.0],  # at step 0
    ]).T[:, None, :]  # (T=6, N=1, C=3)
    spikes = first_spikes(v, 1.0)
    assert spikes.shape == v.shape
    assert spikes[:, 0, 0].tolist() == [0, 0, 1, 0, 0, 0]
    assert spikes[:, 0, 1].tolist() == [0] * 6
    assert spikes[:, 0, 2].tolist() == [1, 0, 0, 0, 0, 0]


def first_crossing(v: torch.Tensor, theta: float) -> torch.Tensor:
    """Index of the first step with v >= theta per (n, c), or T when never."""
    T = v.shape[0]
    above = v >= theta
    idx = torch.where(above, torch.arange(T)[:, None, None].expand_as(v), torch.full_like(v, T, dtype=torch.long))
    return idx.min(0).values


@pytest.mark.parametrize("theta", [0.5, 1.0, 2.0])
def test_first_spikes_at_most_one_spike_at_first_crossing(theta):
    """Random potentials: 0/1 output, at most one spike per neuron, at the first crossing."""
    v = torch.randn(20, 16, 32).cumsum(0) * 0.3
    spikes = first_spikes(v, theta)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert spikes.sum(0).max().item() <= 1
    first = first_crossing(v, theta)
    fired = first < 20
    assert 0 < fired.float().mean().item() < 1, "want both firing and silent neurons"
    assert torch.equal(spikes.sum(0) == 1, fired)
    assert torch.equal(spikes.argmax(0)[fired], first[fired])


@pytest.mark.parametrize("slope", [1.0, 5.0])
def test_first_spikes_gradient_stops_after_first_spike(slope):
    """Surrogate gradient G[t] / (1 + slope |v - theta|)^2 reaches every step up to and
    including the first spike, and is exactly zero after it."""
    theta = 1.0
    v = (torch.randn(15, 8, 12).cumsum(0) * 0.3).requires_grad_()
    G = torch.rand(15, 8, 12) + 0.1
    (first_spikes(v, theta, slope) * G).sum().backward()
    first = first_crossing(v.detach(), theta)
    steps = torch.arange(15)[:, None, None]
    up_to_first = steps <= first[None]
    surrogate = G / (1 + slope * (v.detach() - theta).abs()) ** 2
    assert (first < 15).any() and (first < 14).any()
    assert torch.allclose(v.grad[up_to_first], surrogate[up_to_first], rtol=1e-6, atol=0)
    assert torch.all(v.grad[~up_to_first] == 0)
    assert torch.all(v.grad[up_to_first] > 0)


def test_layer_forward_fires_once_at_first_threshold_crossing():
    """SRMLayer.forward = first spikes of SRMLayer.potential under its threshold."""
    layer = SRMLayer(30, 20, K=3, delays=[0, 2, 4], tau=2.0, threshold=1.0, init_gain=6.0)
    raster = random_raster(16, 8, 30, rate=0.1)
    with torch.no_grad():
        v = layer.potential(raster)
        spikes = layer(raster)
    first = first_crossing(v, 1.0)
    fired = first < 16
    assert 0 < fired.float().mean().item() < 1
    assert spikes.sum(0).max().item() <= 1
    assert torch.equal(spikes.sum(0) == 1, fired)
    assert torch.equal(spikes.argmax(0)[fired], first[fired])


def test_layer_forward_gradient_reaches_weights():
    """The surrogate lets a loss on the spikes produce finite, nonzero weight gradients."""
    layer = SRMLayer(30, 20, K=3, tau=2.0, init_gain=6.0)
    (layer(random_raster(16, 8, 30, rate=0.1)) * torch.arange(16.0)[:, None, None]).sum().backward()
    grad = layer.weight_events.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


# ---------------------------------------------------------------- the network

NET = dict(in_features=40, hidden=24, out_features=10, T=16, K=3, delay_spread=2, tau=2.0,
           threshold=1.0, init_gain=4.0)


def input_times(N: int = 16, n_in: int = 40, T: int = 16) -> torch.Tensor:
    """First-spike times with silent inputs and some times >= T."""
    times = torch.randint(0, T + 3, (N, n_in)).to(torch.uint8)
    times[torch.rand(N, n_in) < 0.3] = 255
    return times


def test_network_output_shapes():
    """logits (N, out), hidden_spikes (T, N, hidden) first-spike raster, input spike count."""
    net = SRMNetwork(**NET)
    times = input_times()
    out = net(times)
    assert out.logits.shape == (16, 10)
    assert out.hidden_spikes.shape == (16, 16, 24)
    assert out.input_spikes == int((times < 16).sum())
    assert out.hidden_spikes.sum(0).max().item() <= 1
    assert out.hidden_spikes.sum() > 0, "the test network should have hidden spikes"
    assert net.hidden.weight.shape == (24, 40, 3) and net.output.weight.shape == (10, 24, 3)
    assert net.hidden_importance().shape == (24,)


@pytest.mark.parametrize("training", [False, True])
def test_network_times_and_raster_give_identical_logits(training):
    """uint8 first-spike times and the equivalent float raster are the same input."""
    net = SRMNetwork(**NET).train(training)
    times = input_times()
    order = torch.sort(times.long(), dim=1, stable=True).indices
    a, b, c = net(times), net(times_to_raster(times, 16)), net(times, order)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.logits, c.logits)
    assert torch.equal(a.hidden_spikes, b.hidden_spikes)
    assert a.input_spikes == b.input_spikes


def test_network_logits_are_scaled_peak_output_potential():
    """Readout: logits = readout_scale * max over t of the output potential."""
    net = SRMNetwork(**NET).eval()
    times = input_times()
    with torch.no_grad():
        out = net(times)
        v_out = net.output.potential(out.hidden_spikes)
    assert torch.allclose(out.logits, net.config.readout_scale * v_out.amax(0), rtol=1e-6, atol=1e-6)


DROPOUT_KINDS = [k for k in KINDS if k != "none"]


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("kind", DROPOUT_KINDS)
def test_network_dropout_site_changes_training_output_only(site, kind):
    """Each dropout site and kind acts in training mode (logits differ from eval) and is the
    identity in eval mode (logits equal those of the same weights without dropout)."""
    net = SRMNetwork(**NET, dropout=kind, p=0.5, site=site)
    plain = SRMNetwork(**NET)
    plain.load_state_dict(net.state_dict())
    times = input_times()
    with torch.no_grad():
        eval_logits = net.eval()(times).logits
        assert torch.equal(eval_logits, plain.eval()(times).logits)
        train_logits = net.train()(times).logits
    assert train_logits.shape == eval_logits.shape
    assert not torch.equal(train_logits, eval_logits)


def test_network_without_dropout_is_the_same_in_training_and_eval():
    net = SRMNetwork(**NET)
    times = input_times()
    with torch.no_grad():
        assert torch.equal(net.train()(times).logits, net.eval()(times).logits)


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("kind", ["none", "dropout", "alpha", "feature_alpha"])
@pytest.mark.parametrize("time_consistent", [False, True])
def test_network_loss_backward_gives_finite_gradients(site, kind, time_consistent):
    """Cross-entropy on the logits back-propagates to every parameter, finite and nonzero."""
    net = SRMNetwork(**NET, dropout=kind, p=0.3 if kind != "none" else 0.0, site=site,
                     time_consistent=time_consistent).train()
    loss = F.cross_entropy(net(input_times()).logits, torch.randint(0, 10, (16,)))
    loss.backward()
    assert torch.isfinite(loss)
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- CUDA

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")


@cuda
@pytest.mark.parametrize("site", SITES)
def test_network_on_cuda_matches_cpu(site):
    """Forward and backward on the GPU: every tensor on the device, same numbers as the CPU."""
    device = torch.device("cuda")
    cpu_net = SRMNetwork(**NET, site=site).train()
    gpu_net = copy.deepcopy(cpu_net).to(device)
    times = input_times()
    labels = torch.randint(0, 10, (16,))

    cpu_out = cpu_net(times)
    F.cross_entropy(cpu_out.logits, labels).backward()
    gpu_times = times.to(device)
    events = events_from_times(gpu_times, 16)
    for name in EVENT_FIELDS:
        assert getattr(events, name).device.type == "cuda", name
    gpu_out = gpu_net(gpu_times)
    F.cross_entropy(gpu_out.logits, labels.to(device)).backward()

    assert gpu_out.logits.device.type == "cuda" and gpu_out.hidden_spikes.device.type == "cuda"
    assert torch.equal(gpu_out.hidden_spikes.cpu(), cpu_out.hidden_spikes)
    assert torch.allclose(gpu_out.logits.cpu(), cpu_out.logits, rtol=1e-4, atol=1e-4)
    for (name, p_cpu), p_gpu in zip(cpu_net.named_parameters(), gpu_net.parameters(), strict=True):
        assert p_gpu.device.type == "cuda" and p_gpu.grad.device.type == "cuda", name
        assert torch.allclose(p_gpu.grad.cpu(), p_cpu.grad, rtol=1e-3, atol=1e-5), name


@cuda
@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("kind", DROPOUT_KINDS)
def test_network_dropout_runs_on_cuda(site, kind):
    """Dropout masks are drawn on the device; training forward/backward stays on it."""
    device = torch.device("cuda")
    net = SRMNetwork(**NET, dropout=kind, p=0.3, site=site).to(device).train()
    out = net(input_times().to(device))
    F.cross_entropy(out.logits, torch.randint(0, 10, (16,), device=device)).backward()
    assert out.logits.device.type == "cuda"
    for name, param in net.named_parameters():
        assert param.grad.device.type == "cuda" and torch.isfinite(param.grad).all(), name



@pytest.mark.parametrize("shape", [(1, 6), (6, 1), (1, 1)])
def test_events_from_times_leaves_its_input_alone(shape):
    """Single-sample and single-input batches (whose transposes are views) are not modified."""
    times = torch.tensor([3, 255, 0, 30, 7, 1], dtype=torch.uint8)[: shape[0] * shape[1]].view(shape)
    before = times.clone()
    events = events_from_times(times, 10)
    assert torch.equal(times, before)
    assert events.count == int((before < 10).sum())
