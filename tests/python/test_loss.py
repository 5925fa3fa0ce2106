"""spikeops.loss against straightforward re-statements of snnTorch's losses/metrics and SpikingJelly's rate MSE."""

import math

import pytest
import torch

from spikeops import loss

T, N, C = 6, 5, 4


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    spk = (torch.rand(T, N, C, generator=g) < 0.4).float()
    mem = torch.randn(T, N, C, generator=g)
    y = torch.tensor([0, 3, 1, 3, 2])
    w = torch.tensor([0.5, 1.0, 2.0, 0.25])
    return spk, mem, y, w


def ce(logits_row, target):
    """-log softmax(logits)[target] for one sample."""
    return -(logits_row[target] - torch.logsumexp(logits_row, 0))


def test_ce_rate_loss(data):
    spk, _, y, w = data
    per_sample = torch.stack([sum(ce(spk[t, n], y[n]) for t in range(T)) / T for n in range(N)])
    assert torch.allclose(loss.ce_rate_loss()(spk, y), per_sample.mean())
    assert torch.allclose(loss.ce_rate_loss(reduction="sum")(spk, y), per_sample.sum())
    assert torch.allclose(loss.ce_rate_loss(reduction="none")(spk, y), per_sample)
    assert torch.allclose(loss.ce_rate_loss(weight=w)(spk, y), (per_sample * w[y]).mean())
    assert loss.ce_rate_loss()(spk, y).shape == ()


def test_ce_count_loss(data):
    spk, _, y, w = data
    counts = spk.sum(0)
    per_sample = torch.stack([ce(counts[n], y[n]) for n in range(N)])
    assert torch.allclose(loss.ce_count_loss()(spk, y), per_sample.mean())
    assert torch.allclose(loss.ce_count_loss(weight=w)(spk, y), (per_sample * w[y]).mean())
    # population code: 3 neurons per class, class i = outputs 3i..3i+2
    pop = (torch.rand(T, N, 3 * C) < 0.3).float()
    pop_counts = torch.stack([pop[:, :, 3 * i:3 * i + 3].sum(dim=(0, 2)) for i in range(C)], dim=1)
    expected = torch.stack([ce(pop_counts[n], y[n]) for n in range(N)]).mean()
    assert torch.allclose(loss.ce_count_loss(population_code=True, num_classes=C)(pop, y), expected)
    with pytest.raises(ValueError, match="multiple"):
        loss.ce_count_loss(population_code=True, num_classes=5)(pop, y)


@pytest.mark.parametrize("correct_rate, incorrect_rate", [(1, 0), (0.8, 0.2), (0.55, 0.1)])
def test_mse_count_loss(data, correct_rate, incorrect_rate):
    spk, _, y, w = data
    on, off = int(T * correct_rate), int(T * incorrect_rate)  # truncation, as snnTorch
    target = torch.full((N, C), float(off))
    target[torch.arange(N), y] = float(on)
    sq = (spk.sum(0) - target) ** 2
    fn = loss.mse_count_loss(correct_rate, incorrect_rate)
    assert torch.allclose(fn(spk, y), sq.mean() / T)
    assert torch.allclose(loss.mse_count_loss(correct_rate, incorrect_rate, reduction="none")(spk, y), sq / T)
    assert torch.allclose(loss.mse_count_loss(correct_rate, incorrect_rate, weight=w)(spk, y),
                          (sq * w[y].unsqueeze(1)).mean() / T)


def test_mse_count_loss_population(data):
    _, _, y, _ = data
    pop = (torch.rand(T, N, 2 * C) < 0.5).float()
    counts = pop.view(T, N, C, 2).sum(dim=(0, 3))
    on, off = int(T * 0.8 * 2), int(T * 0.2 * 2)
    target = torch.full((N, C), float(off))
    target[torch.arange(N), y] = float(on)
    got = loss.mse_count_loss(0.8, 0.2, population_code=True, num_classes=C)(pop, y)
    assert torch.allclose(got, ((counts - target) ** 2).mean() / T)


@pytest.mark.parametrize("on, off", [(1.0, 0.0), (1.2, 0.3), (1.0, -0.5), (0.2, 0.7)])
def test_mse_membrane_loss(data, on, off):
    _, mem, y, w = data
    one_hot = torch.nn.functional.one_hot(y, C).float()
    # snnTorch's target: max(one_hot * on, off) when on > off, else on/off per class
    target = torch.clamp(one_hot * on, min=off) if on > off else one_hot * on + (1 - one_hot) * off
    expected = sum(((mem[t] - target) ** 2).mean() for t in range(T)) / T
    assert torch.allclose(loss.mse_membrane_loss(on_target=on, off_target=off)(mem, y), expected)
    none = loss.mse_membrane_loss(on_target=on, off_target=off, reduction="none")(mem, y)
    assert torch.allclose(none, ((mem - target) ** 2).mean(0))
    weighted = loss.mse_membrane_loss(on_target=on, off_target=off, weight=w)(mem, y)
    assert torch.allclose(weighted, (((mem - target) ** 2).mean(0) * w[y].unsqueeze(1)).mean())


def test_mse_membrane_loss_time_varying_targets(data):
    _, mem, y, _ = data
    targets = torch.rand(T, N, C)
    got = loss.mse_membrane_loss(time_var_targets=True)(mem, targets)
    assert torch.allclose(got, sum(((mem[t] - targets[t]) ** 2).mean() for t in range(T)) / T)
    with pytest.raises(ValueError, match=r"\[T, N, C\]"):
        loss.mse_membrane_loss(time_var_targets=True)(mem, targets[0])


def test_accuracy_rate(data):
    spk, _, y, _ = data
    counts = spk.sum(0)
    expected = sum(int(counts[n].argmax()) == int(y[n]) for n in range(N)) / N
    assert loss.accuracy_rate(spk, y) == pytest.approx(expected)
    assert isinstance(loss.accuracy_rate(spk, y), float)
    perfect = torch.nn.functional.one_hot(y, C).float().expand(T, N, C)
    assert loss.accuracy_rate(perfect, y) == 1.0
    assert loss.accuracy_rate(perfect.to(torch.uint8), y) == 1.0
    pop = perfect.repeat_interleave(2, dim=2)
    assert loss.accuracy_rate(pop, y, population_code=True, num_classes=C) == 1.0
    assert math.isnan(loss.accuracy_rate(torch.zeros(T, 0, C), torch.zeros(0, dtype=torch.long)))


def test_firing_rate_mse(data):
    spk, _, y, _ = data
    expected = ((spk.mean(0) - torch.nn.functional.one_hot(y, C).float()) ** 2).mean()
    assert torch.allclose(loss.firing_rate_mse(spk, y, C), expected)
    assert torch.allclose(loss.firing_rate_mse(spk.to(torch.uint8), y, C), expected)
    with pytest.raises(ValueError, match="num_classes"):
        loss.firing_rate_mse(spk, y, 10)


def test_gradients_flow(data):
    spk, mem, y, _ = data
    for fn, x in ((loss.ce_rate_loss(), spk), (loss.ce_count_loss(), spk), (loss.mse_count_loss(), spk),
                  (loss.mse_membrane_loss(), mem), (lambda a, b: loss.firing_rate_mse(a, b, C), spk)):
        x = x.clone().requires_grad_(True)
        fn(x, y).backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_arguments(data):
    spk, _, y, _ = data
    with pytest.raises(ValueError, match=r"\[T, N, C\]"):
        loss.ce_rate_loss()(spk[0], y)
    with pytest.raises(ValueError, match=r"targets must be \[N\]"):
        loss.ce_count_loss()(spk, y[:3])
    with pytest.raises(ValueError, match="targets must lie in"):
        loss.ce_count_loss()(spk, torch.tensor([0, 1, 2, 3, 4]))
    with pytest.raises(TypeError, match="integer class indices"):
        loss.mse_count_loss()(spk, y.float())
    with pytest.raises(ValueError, match="reduction"):
        loss.ce_rate_loss(reduction="avg")
    with pytest.raises(ValueError, match="correct_rate"):
        loss.mse_count_loss(correct_rate=1.5)


@pytest.mark.parametrize("make", [lambda w: loss.ce_rate_loss(weight=w), lambda w: loss.ce_count_loss(weight=w),
                                  lambda w: loss.mse_count_loss(weight=w), lambda w: loss.mse_membrane_loss(weight=w)])
@pytest.mark.parametrize("weight", [[1.0, 2.0], torch.ones(5, 1), torch.ones(6)])
def test_weight_of_another_shape_than_the_classes_is_named(make, weight):
    # A shorter weight raised IndexError from weight[targets]; a [C, 1] one broadcast [N] * [N, 1] silently.
    spk = torch.ones(3, 4, 5)
    with pytest.raises(ValueError, match=r"weight must be \[C\] = \[5\] per-class weights"):
        make(weight)(spk, torch.tensor([0, 1, 2, 4]))


@pytest.mark.parametrize("targets, exc", [(torch.tensor([0.0, 1.0, 2.0, 4.0]), TypeError),
                                          (torch.tensor([0, 1, 2, 9]), ValueError)])
def test_accuracy_rate_checks_targets_as_the_losses(targets, exc):
    # Float targets were compared as floats and out-of-range ones silently counted as wrong.
    with pytest.raises(exc, match="accuracy_rate: targets must"):
        loss.accuracy_rate(torch.ones(3, 4, 5), targets)
