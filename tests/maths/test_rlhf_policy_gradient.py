"""KL-penalised policy gradient (the KDRL update): exact and sampled training reach the closed-form optima."""

import math

import pytest
import torch

from kllab.maths import rlhf

pytestmark = pytest.mark.usefixtures("float64", "one_thread")



def bandit(rows=4, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.log_softmax(torch.randn(rows, k, generator=g), -1)
    reward = torch.zeros(rows, k)
    reward[:, 0] = 1.0
    return teacher, reward


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_exact_training_reaches_the_optimum_of_its_kl(beta):
    teacher, reward = bandit()
    start = torch.zeros_like(teacher)
    for estimator, direction in (("k2", "reverse"), ("k3", "forward")):
        run = rlhf.kl_penalized_training(start, teacher, reward, beta, estimator=estimator, group=None, steps=3000)
        star = rlhf.kl_regularized_policy(teacher, reward, beta, direction=direction).exp()
        torch.testing.assert_close(run.logpi.exp(), star, atol=1e-6, rtol=0)


def test_k1_as_a_loss_adds_nothing():
    teacher, reward = bandit()
    start = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    a = rlhf.kl_penalized_training(start, teacher, reward, 5.0, estimator="k1", group=None, steps=50)
    b = rlhf.kl_penalized_training(start, teacher, reward, 0.0, estimator="k1", group=None, steps=50)
    torch.testing.assert_close(a.logpi, b.logpi, atol=1e-12, rtol=0)


def test_sampled_training_is_unbiased_on_average():
    # One step from the same start, averaged over many seeds, equals the exact expected step.
    teacher, reward = bandit(rows=2)
    start = torch.randn(2, 6, generator=torch.Generator().manual_seed(4))
    exact = rlhf.kl_penalized_training(start, teacher, reward, 0.7, estimator="k2", group=None, steps=1, lr=1e-3)
    steps = torch.stack([rlhf.kl_penalized_training(start, teacher, reward, 0.7, estimator="k2", group=4, steps=1,
                                                    lr=1e-3, seed=s).logpi for s in range(3000)])
    drift = (steps - start.log_softmax(-1)) / 1e-3
    expected = (exact.logpi - start.log_softmax(-1)) / 1e-3
    se = drift.std(0) / math.sqrt(3000)
    assert ((drift.mean(0) - expected).abs() <= 5 * se + 1e-6).all()


def test_sampled_training_ends_near_the_optimum():
    teacher, reward = bandit(rows=32, seed=1)
    run = rlhf.kl_penalized_training(torch.zeros(32, 6), teacher, reward, 1.0, estimator="k2", group=16,
                                     steps=1500, lr=0.3, seed=0)
    star = rlhf.kl_regularized_policy(teacher, reward, 1.0).exp()
    assert (run.logpi.exp()[:, 0] - star[:, 0]).abs().mean().item() < 0.03


def test_snapshots_and_bad_input():
    teacher, reward = bandit(rows=1)
    run = rlhf.kl_penalized_training(torch.zeros(1, 6), teacher, reward, 1.0, steps=10, snapshots=[0, 5, 10, 99])
    assert run.steps == [0, 5, 10] and run.path.shape == (3, 1, 6)
    torch.testing.assert_close(run.path[-1], run.logpi)
    with pytest.raises(ValueError, match="estimator must be one of"):
        rlhf.kl_penalized_training(torch.zeros(6), teacher[0], reward[0], 1.0, estimator="k4")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        rlhf.kl_penalized_training(torch.zeros(6), teacher[0], reward[0], -1.0)
    with pytest.raises(ValueError, match="group must be >= 2"):
        rlhf.kl_penalized_training(torch.zeros(6), teacher[0], reward[0], 1.0, group=1)
    with pytest.raises(ValueError, match="logp_ref must be > -inf"):
        rlhf.kl_penalized_training(torch.zeros(2), torch.tensor([0.0, -math.inf]), torch.zeros(2), 1.0)


@pytest.mark.parametrize("group", [None, 4])
def test_one_estimator_per_slice_equals_separate_runs(group):
    teacher, reward = bandit(rows=2)
    start = torch.randn(2, 6, generator=torch.Generator().manual_seed(5))
    names = ("k1", "k2", "k3")
    together = rlhf.kl_penalized_training(start.expand(3, 2, 6), teacher.expand(3, 2, 6), reward.expand(3, 2, 6), 0.8,
                                          estimator=names, group=group, steps=30, lr=0.2, optimizer="adam")
    for i, name in enumerate(names):
        alone = rlhf.kl_penalized_training(start, teacher, reward, 0.8, estimator=name, group=None, steps=30, lr=0.2,
                                           optimizer="adam")
        if group is None:   # sampled runs draw differently in a batch; the exact ones must agree
            torch.testing.assert_close(together.logpi[i], alone.logpi, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="estimator must name one estimator per slice"):
        rlhf.kl_penalized_training(start, teacher, reward, 0.8, estimator=("k1", "k2", "k3"))


@pytest.mark.parametrize("group", [2, 4])
def test_sampled_step_is_the_exact_step_on_average_for_every_estimator(group):
    # Many identical rows make one sampled step an average over independent groups: for each estimator (one per slice)
    # the mean drift must be the exact expected step. This pins the leave-one-out baseline (GRPO's mean-with-self
    # baseline scales the reward gradient by (G-1)/G) and each slice's own estimator in the sampled branch.
    g = torch.Generator().manual_seed(7)
    rows, k, lr = 20_000, 5, 1e-3
    teacher = torch.log_softmax(torch.randn(k, generator=g), -1)
    reward = torch.randn(k, generator=g)
    start = torch.randn(k, generator=g)
    names = ("k1", "k2", "k3")
    shape = (len(names), rows, k)
    sampled = rlhf.kl_penalized_training(start.expand(shape), teacher.expand(shape), reward.expand(shape), 0.5,
                                         estimator=names, group=group, steps=1, lr=lr, seed=3, snapshots=[])
    drift = (sampled.logpi - start.log_softmax(-1)) / lr                     # (3, rows, k)
    for i, name in enumerate(names):
        exact = rlhf.kl_penalized_training(start, teacher, reward, 0.5, estimator=name, group=None, steps=1, lr=lr,
                                           snapshots=[])
        expected = (exact.logpi - start.log_softmax(-1)) / lr
        se = drift[i].std(0) / math.sqrt(rows)
        assert ((drift[i].mean(0) - expected).abs() <= 5 * se + 1e-4).all(), (name, drift[i].mean(0), expected, se)


def test_sampled_training_with_k2_and_k3_side_by_side_ends_at_each_own_optimum():
    # The sampled branch, with one estimator per slice: k2 ends at the reverse-KL optimum, k3 at the forward-KL one,
    # which differ here by far more than the tolerance.
    teacher, reward = bandit(rows=32, seed=1)
    beta = 0.3
    run = rlhf.kl_penalized_training(torch.zeros(2, 32, 6), teacher.expand(2, 32, 6), reward.expand(2, 32, 6), beta,
                                     estimator=("k2", "k3"), group=16, steps=1500, lr=0.3, seed=0, snapshots=[])
    stars = {d: rlhf.kl_regularized_policy(teacher, reward, beta, direction=d).exp()[:, 0] for d in ("reverse", "forward")}
    assert (stars["reverse"] - stars["forward"]).abs().mean().item() > 0.05
    assert (run.logpi.exp()[0, :, 0] - stars["reverse"]).abs().mean().item() < 0.03
    assert (run.logpi.exp()[1, :, 0] - stars["forward"]).abs().mean().item() < 0.03


def test_adam_ascends_the_objective_and_reaches_the_optimum_of_each_kl():
    # optimizer="adam" must maximise, like the plain steps: with exact gradients it ends at each estimator's own optimum
    # (the side-by-side tests compare Adam with Adam, so they would pass with a descending Adam too).
    teacher, reward = bandit()
    names, beta = ("k2", "k3"), 0.5
    logits = torch.zeros(2, 4, 6)
    for steps, lr in ((600, 0.1), (400, 0.01)):
        logits = rlhf.kl_penalized_training(logits, teacher.expand(2, 4, 6), reward.expand(2, 4, 6), beta,
                                            estimator=names, group=None, steps=steps, lr=lr, optimizer="adam",
                                            snapshots=[]).logpi
    for i, direction in enumerate(("reverse", "forward")):
        star = rlhf.kl_regularized_policy(teacher, reward, beta, direction=direction).exp()
        torch.testing.assert_close(logits[i].exp(), star, atol=1e-4, rtol=0)
