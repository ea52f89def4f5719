"""The network's fast paths against the dense form of the same equations: dropout on the
input spikes (each kind, each mask in time) and the silencing of hidden neurons."""

from __future__ import annotations

import pytest
import torch

from snnlib.model import functional as SF
from snnlib.model.dropout import ALPHA_KINDS, KINDS, alpha_dropout_apply, keep_mask, make_dropout
from snnlib.model.kernels import NO_SPIKE, times_to_raster
from snnlib.model.network import NetworkConfig, SRMNetwork, input_dropout_current

DROPOUT_KINDS = [k for k in KINDS if k != "none"]


def random_times(N: int, n_in: int, T: int, silent: float = 0.5) -> torch.Tensor:
    times = torch.randint(0, T - 2, (N, n_in), dtype=torch.uint8)
    return times.masked_fill(torch.rand(N, n_in) < silent, NO_SPIKE)


def dense_dropped_current(layer, times: torch.Tensor, T: int, kind: str, p: float,
                          keep: torch.Tensor) -> torch.Tensor:
    """Eq 3 on the dropped-out raster, the dense way, with a given ``(T, N, I)`` mask."""
    raster = times_to_raster(times, T)
    if kind in ALPHA_KINDS:
        dropped = alpha_dropout_apply(raster, keep, p)
    else:
        dropped = raster * keep / (1 - p)
    return SF.apply_delays(SF.dense_bags(dropped, layer.weight_events), layer.delays_list)


@pytest.mark.parametrize("time_consistent", [False, True])
@pytest.mark.parametrize("kind", DROPOUT_KINDS)
@pytest.mark.parametrize("silent", [0.5, 0.02])
def test_input_dropout_current_matches_the_dense_form(kind, time_consistent, silent):
    """Every kind on the input spikes: the cheap exact form equals eq 3 on the dropped-out
    raster, given the mask it drew (drawn again from the same seed for the dense form)."""
    T, N, n_in, p = 16, 6, 40, 0.5
    net = SRMNetwork(NetworkConfig(in_features=n_in, hidden=12, T=T, K=3, delay_spread=2, dropout=kind, p=p,
                                   time_consistent=time_consistent, site="input"))
    times = random_times(N, n_in, T, silent)
    torch.manual_seed(5)
    fast = input_dropout_current(net.hidden, times, net.dropout, T)
    torch.manual_seed(5)
    per_step_alpha = kind == "alpha" and not time_consistent
    keep = keep_mask((T, N, n_in) if per_step_alpha else (N, n_in), p)
    keep = keep if per_step_alpha else keep[None].expand(T, N, n_in)
    dense = dense_dropped_current(net.hidden, times, T, kind, p, keep)
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", DROPOUT_KINDS)
def test_input_dropout_current_weight_gradient_matches_the_dense_form(kind):
    T, N, n_in, p = 16, 5, 30, 0.3
    net = SRMNetwork(NetworkConfig(in_features=n_in, hidden=8, T=T, K=2, delay_spread=3, dropout=kind, p=p,
                                   site="input"))
    times = random_times(N, n_in, T)
    upstream = torch.randn(T, N, 8)
    torch.manual_seed(2)
    (input_dropout_current(net.hidden, times, net.dropout, T) * upstream).sum().backward()
    fast = net.hidden.weight_events.grad.clone()
    net.hidden.weight_events.grad = None
    torch.manual_seed(2)
    per_step_alpha = kind == "alpha"
    keep = keep_mask((T, N, n_in) if per_step_alpha else (N, n_in), p)
    keep = keep if per_step_alpha else keep[None].expand(T, N, n_in)
    (dense_dropped_current(net.hidden, times, T, kind, p, keep) * upstream).sum().backward()
    torch.testing.assert_close(fast, net.hidden.weight_events.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["dropout", "feature_alpha"])
@pytest.mark.parametrize("silent, p", [(0.5, 0.5), (0.02, 0.5), (0.02, 0.1)])  # 0.1: the grid keeps its silent bag
def test_the_precomputed_order_gives_the_same_current_and_gradient_bit_for_bit(kind, silent, p):
    """The dataset's order, filtered by the mask (kept_order), instead of a sort of every batch."""
    T, N, n_in = 16, 7, 60
    net = SRMNetwork(NetworkConfig(in_features=n_in, hidden=9, T=T, K=3, delay_spread=2, dropout=kind, p=p,
                                   site="input"))
    times = random_times(N, n_in, T, silent)
    order = torch.sort(times, dim=1, stable=True).indices.int()
    upstream = torch.randn(T, N, 9)
    results = []
    for given in (None, order):
        torch.manual_seed(3)
        net.hidden.weight_events.grad = None
        current = input_dropout_current(net.hidden, times, net.dropout, T, given)
        (current * upstream).sum().backward()
        results.append((current.detach().clone(), net.hidden.weight_events.grad.clone()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_kept_order_is_the_stable_sort_for_every_spike_that_still_fires():
    from snnlib.model.kernels import NO_SPIKE
    from snnlib.model.network import kept_order

    times = random_times(5, 40, 16, silent=0.3)
    keep = torch.rand(5, 40) > 0.5
    order = kept_order(torch.sort(times, dim=1, stable=True).indices.int(), keep)
    kept = times.masked_fill(~keep, NO_SPIKE)
    expected = torch.sort(kept, dim=1, stable=True).indices.int()
    for n in range(5):
        fired = int((kept[n] < 16).sum())
        assert torch.equal(order[n, :fired], expected[n, :fired])
        assert sorted(order[n].tolist()) == list(range(40))


def test_input_dropout_zeroing_kinds_drop_each_spike_with_probability_p():
    """Each input fires once, so every zeroing kind keeps a spike with probability 1 - p."""
    T, N, n_in, p = 16, 400, 50, 0.3
    times = random_times(N, n_in, T, silent=0.0)
    for kind in ("dropout", "dropout2d", "feature"):
        dropout = make_dropout(kind, p)
        net = SRMNetwork(NetworkConfig(in_features=n_in, hidden=4, T=T, K=1, dropout=kind, p=p, site="input"))
        with torch.no_grad():
            net.hidden.weight_events.fill_(1.0)
            current = input_dropout_current(net.hidden, times, dropout, T)
        kept_share = float(current.sum()) * (1 - p) / (4 * N * n_in)  # every weight 1, 4 hidden
        assert abs(kept_share - (1 - p)) < 0.01


@pytest.mark.parametrize("site", ["current", "hidden", "input"])
def test_input_and_other_sites_leave_eval_mode_alone(site):
    net = SRMNetwork(NetworkConfig(in_features=30, hidden=8, dropout="alpha", p=0.5, site=site))
    times = random_times(4, 30, net.config.T)
    ref = SRMNetwork(NetworkConfig(in_features=30, hidden=8))
    ref.load_state_dict(net.state_dict())
    torch.testing.assert_close(net.eval()(times).logits, ref.eval()(times).logits)


def test_silenced_logits_equal_zeroing_each_neurons_outgoing_weights():
    """Silencing hidden neuron h equals a network whose weights out of h are zero."""
    torch.manual_seed(3)
    net = SRMNetwork(NetworkConfig(in_features=60, hidden=10, init_gain=3.0)).eval()
    times = random_times(7, 60, net.config.T, silent=0.3)
    silenced = net.silenced_logits(times)
    assert silenced.shape == (7, 10, 10)
    fired = net.hidden_spikes(times)[0].sum(dim=(0, 1))
    assert (fired > 0).sum() >= 3, "the test needs hidden neurons that fire"
    for h in range(10):
        copy = SRMNetwork(net.config)
        copy.load_state_dict(net.state_dict())
        with torch.no_grad():
            copy.output.weight_events[:, h] = 0
        torch.testing.assert_close(silenced[:, h], copy.eval()(times).logits, rtol=1e-5, atol=1e-5)
