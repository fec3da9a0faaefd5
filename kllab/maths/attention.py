r"""A tiny single-head attention model, its instability diagnostics, and the learning-rate sensitivity.

The toy of small-scale proxies for Transformer training instabilities (Wortsman et al., 2023): one
pre-LayerNorm block (one causal attention head and an MLP) trained by next-token cross-entropy on
sequences drawn from a known bigram (first-order Markov) source, so that the floor of the loss is exact.

**The source and its floor.** A transition matrix :math:`P_{ij} = p(x_{t+1}=j \mid x_t=i)`, started
from its stationary law :math:`\pi` (:math:`\pi P = \pi`), has the entropy rate

.. math::
    H = -\sum_i \pi_i \sum_j P_{ij} \log P_{ij}.

For a model :math:`q(\cdot \mid x_{\le t})`, the cross-entropy against the source's next-token law splits as

.. math::
    \sum_j P_{x_t j}\,[-\log q_j] = H(P_{x_t\cdot}) + \mathrm{KL}(P_{x_t\cdot} \,\|\, q) \;\ge\; H(P_{x_t\cdot}),

exactly, at every position and for every model: :func:`expected_cross_entropy` returns both terms,
so CE - H is a KL, never negative. Averaged over positions drawn from :math:`\pi`, :math:`H(P_{x_t\cdot})`
averages to :math:`H`.

**The model** (:class:`TinyAttention`, ``n_models`` independent copies evaluated side by side; one
:class:`~kllab.maths.optim.Adam` over the stacked weights, with a step size per model,
:func:`adam_step_per_model`): token embedding :math:`x`, then

.. math::
    h = x + W_O\,\mathrm{softmax}\Big(\frac{\tilde q \tilde k^\top}{\sqrt{d}} + \mathrm{mask}\Big) v,\quad
    y = h + W_2\,\mathrm{relu}(W_1\,\mathrm{LN}(h)),\quad z = W_U\,\mathrm{LN}(y),

with :math:`q, k, v = \mathrm{LN}(x) W_{Q,K,V}` and, with qk-layernorm, :math:`\tilde q = \mathrm{LN}(q)`,
:math:`\tilde k = \mathrm{LN}(k)` (LayerNorm without gain or bias), else :math:`\tilde q = q, \tilde k = k`.
A LayerNorm output has Euclidean norm :math:`\sqrt{d}` (up to its ε), so with qk-layernorm every
attention logit obeys :math:`|\tilde q \cdot \tilde k| / \sqrt d \le \sqrt d` (Cauchy-Schwarz):
:func:`qk_logit_bound`. Without it, Adam moves each weight by about the learning rate per step, so
:math:`W_Q` and :math:`W_K` grow linearly and the logits quadratically in the step count: attention
entropy collapses (Dehghani et al., 2023; Wortsman et al., 2023, section 3.1).

**z-loss.** The loss may add :math:`\alpha_z (\log Z)^2` with :math:`\log Z = \mathrm{logsumexp}(z)`,
which keeps the softmax normaliser near 1 (Chowdhery et al., 2022; the paper uses :math:`\alpha_z = 10^{-4}`).

**Learning-rate sensitivity** (Wortsman et al., 2023, section 3.2):

.. math::
    \mathrm{LRS} = \mathbb{E}_{\eta}\big[\min(L(\eta), L_0) - L^*\big],

over a grid of learning rates :math:`\eta`, with :math:`L_0` the loss at initialisation and :math:`L^*`
the best loss (here we may pass the exact floor :math:`H` instead: then every term is a KL excess).

References: M. Wortsman et al., *Small-scale proxies for large-scale Transformer training
instabilities*, ICLR 2024, arXiv:2309.14322. M. Dehghani et al., *Scaling vision transformers to 22
billion parameters*, 2023. A. Chowdhery et al., *PaLM*, 2022.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from .optim import Adam
from .validation import check_int, check_log_probs, check_real

__all__ = ["random_bigram", "stationary_distribution", "entropy_rate", "sample_bigram", "layer_norm",
           "qk_logit_bound", "attention_entropy", "expected_cross_entropy", "TinyAttention",
           "train_side_by_side", "adam_step_per_model", "lr_sensitivity", "METRICS"]

METRICS = ("loss", "floor", "max_logit", "attn_entropy", "log_z")


def random_bigram(vocab: int, concentration: float, generator: torch.Generator) -> torch.Tensor:
    """Log transition matrix ``logP`` (vocab, vocab) of a random bigram source, rows ~ Dirichlet(concentration).

    Small ``concentration`` gives peaked rows (a low entropy rate), large gives near-uniform rows.
    """
    vocab = check_int("vocab", vocab, low=2, high=4096)
    concentration = check_real("concentration", concentration, low=1e-2, high=1e3)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    g = _gamma(concentration, (vocab, vocab), generator).clamp_min(1e-300)
    return (g / g.sum(-1, keepdim=True)).log()


def _gamma(alpha: float, shape, generator: torch.Generator) -> torch.Tensor:
    # Gamma(alpha) draws from a seeded generator (Marsaglia-Tsang, with the alpha < 1 boost).
    a = alpha + 1.0 if alpha < 1 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    n = math.prod(shape)
    out = torch.empty(0, dtype=torch.float64)
    while out.numel() < n:
        x = torch.randn(2 * n, generator=generator, dtype=torch.float64)
        u = torch.rand(2 * n, generator=generator, dtype=torch.float64)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * x ** 2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        out = torch.cat([out, (d * v)[ok]])
    out = out[:n].reshape(shape)
    if alpha < 1:
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        out = out * u ** (1.0 / alpha)
    return out


def _check_transition(logP: torch.Tensor) -> None:
    if not torch.is_tensor(logP) or logP.ndim != 2 or logP.shape[0] != logP.shape[1]:
        raise ValueError(f"logP must be a square (vocab, vocab) tensor of log transition probabilities; "
                         f"got {tuple(logP.shape) if torch.is_tensor(logP) else type(logP).__name__}")
    check_log_probs("logP", logP)


def stationary_distribution(logP: torch.Tensor) -> torch.Tensor:
    """Stationary law pi of the chain (pi P = pi, sum pi = 1), by solving the linear system in float64."""
    _check_transition(logP)
    P = logP.double().exp()
    V = P.shape[0]
    A = torch.cat([(P.T - torch.eye(V, dtype=torch.float64)), torch.ones(1, V, dtype=torch.float64)])
    b = torch.cat([torch.zeros(V, dtype=torch.float64), torch.ones(1, dtype=torch.float64)])
    pi = torch.linalg.lstsq(A, b.unsqueeze(-1)).solution.squeeze(-1)
    return pi.clamp_min(0) / pi.clamp_min(0).sum()


def _row_entropy(logP: torch.Tensor) -> torch.Tensor:
    P = logP.exp()
    return -(P * torch.where(P > 0, logP, torch.zeros_like(logP))).sum(-1)


def entropy_rate(logP: torch.Tensor) -> float:
    r"""Entropy rate H = -sum_i pi_i sum_j P_ij log P_ij (nats per token) of the stationary chain."""
    _check_transition(logP)
    return float((stationary_distribution(logP) * _row_entropy(logP.double())).sum())


def sample_bigram(logP: torch.Tensor, n_seq: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``n_seq`` sequences of ``length`` tokens (int64, shape (n_seq, length)), started from the stationary law."""
    _check_transition(logP)
    n_seq = check_int("n_seq", n_seq, low=1, high=10_000_000)
    length = check_int("length", length, low=2, high=4096)
    cdf = logP.double().exp().cumsum(-1)
    cdf[:, -1] = 1.0 + 1e-12
    pi_cdf = stationary_distribution(logP).cumsum(0)
    pi_cdf[-1] = 1.0 + 1e-12
    x = torch.empty(n_seq, length, dtype=torch.long)
    u = torch.rand(n_seq, length, generator=generator, dtype=torch.float64)
    u = u.T.contiguous()
    x[:, 0] = torch.searchsorted(pi_cdf, u[0])
    for t in range(1, length):
        rows = cdf[x[:, t - 1]]
        x[:, t] = torch.searchsorted(rows, u[t].unsqueeze(-1)).squeeze(-1)
    return x


def layer_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm over the last axis, without gain or bias: (x - mean) / sqrt(var + eps) (biased variance)."""
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    return xc * torch.rsqrt(xc.pow(2).mean(-1, keepdim=True) + eps)


def qk_logit_bound(d_head: int) -> float:
    r"""Largest |attention logit| under qk-layernorm: |LN(q) . LN(k)| / sqrt(d) <= ||LN(q)|| ||LN(k)|| / sqrt(d) = sqrt(d).

    (Each LayerNorm output has norm at most sqrt(d); the bound is reached when LN(q) = +-LN(k).)
    """
    d_head = check_int("d_head", d_head, low=2)
    return math.sqrt(d_head)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each attention row: -sum_j a_ij log a_ij over the last axis; 0 log 0 = 0.

    ``weights`` (..., T_q, T_k) must be non-negative rows summing to 1 (masked keys carry weight 0).
    """
    if not torch.is_tensor(weights) or weights.ndim < 1:
        raise ValueError(f"weights must be a tensor of attention rows; got {type(weights).__name__}")
    if torch.isnan(weights).any():
        raise ValueError(f"weights must not contain NaN; got {int(torch.isnan(weights).sum())} NaN value(s)")
    if (weights < 0).any() or ((weights.sum(-1) - 1).abs() > 1e-4).any():
        raise ValueError("weights must be non-negative rows summing to 1 on the last axis (apply softmax to the "
                         f"logits first); got row sums in [{float(weights.sum(-1).min()):.4g}, "
                         f"{float(weights.sum(-1).max()):.4g}]")
    return -(weights * torch.where(weights > 0, weights.log(), torch.zeros_like(weights))).sum(-1)


def expected_cross_entropy(logq: torch.Tensor, logP: torch.Tensor, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Cross-entropy of the model against the source's true next-token law, and its floor, per position.

    Returns ``(ce, h)`` with ``ce = sum_j P[prev, j] (-log q_j)`` and ``h = H(P[prev, :])``, each of shape
    ``prev.shape``; ``ce - h = KL(P[prev] || q) >= 0`` exactly.

    Parameters
    ----------
    logq : (..., V) the model's next-token log-probabilities (log_softmax of its logits).
    logP : (V, V) the source's log transition matrix.
    prev : (...) int64, the current tokens x_t.
    """
    _check_transition(logP)
    check_log_probs("logq", logq)
    if prev.dtype != torch.long or tuple(prev.shape) != tuple(logq.shape[:-1]) or logq.shape[-1] != logP.shape[0]:
        raise ValueError(f"prev must be int64 of shape logq.shape[:-1] = {tuple(logq.shape[:-1])} and logq's last "
                         f"axis the vocabulary {logP.shape[0]}; got prev {prev.dtype} {tuple(prev.shape)}, "
                         f"logq {tuple(logq.shape)}")
    rows = logP.to(logq.dtype)[prev]
    p = rows.exp()
    ce = -(p * torch.where(p > 0, logq, torch.zeros_like(logq))).sum(-1)
    return ce, _row_entropy(rows)


class TinyAttention:
    """``n_models`` independent one-block, one-head attention + MLP models, evaluated side by side.

    Parameters
    ----------
    n_models : int
    vocab, width, length : vocabulary V, model width d (= head width), sequence length T.
    qk_norm : sequence of bool, one per model: LayerNorm on queries and keys.
    generator : torch.Generator for the initialisation. Model r's initial weights are drawn in order,
        so two models with the same draw index share their initialisation when ``same_init`` is True.
    same_init : bool
        Give every model the same initial weights (the comparisons then differ only by their settings).

    Each weight matrix starts N(0, 1/fan_in); embeddings N(0, 1). Attribute ``params``: name -> one leaf
    tensor stacked over the models (leading axis ``n_models``); the models never mix (batched matmuls).
    """

    NAMES = ("emb", "wq", "wk", "wv", "wo", "w1", "w2", "wu")

    def __init__(self, n_models: int, vocab: int, width: int, length: int, qk_norm: Sequence[bool],
                 generator: torch.Generator, *, same_init: bool = True, mlp_ratio: int = 2):
        self.n_models = check_int("n_models", n_models, low=1, high=256)
        self.vocab = check_int("vocab", vocab, low=2, high=4096)
        self.width = check_int("width", width, low=2, high=1024)
        self.length = check_int("length", length, low=2, high=1024)
        qk = list(qk_norm)
        if len(qk) != n_models or not all(isinstance(b, bool) for b in qk):
            raise ValueError(f"qk_norm must be {n_models} bools, one per model; got {qk_norm!r}")
        self.qk_norm = torch.tensor(qk)
        d, V, m = width, vocab, mlp_ratio * width
        shapes = {"emb": (V, d, 1.0), "wq": (d, d, d), "wk": (d, d, d), "wv": (d, d, d), "wo": (d, d, d),
                  "w1": (d, m, d), "w2": (m, d, m), "wu": (d, V, d)}
        draws = 1 if same_init else n_models
        init = {k: [torch.randn(a, b, generator=generator) / math.sqrt(f) for _ in range(draws)]
                for k, (a, b, f) in shapes.items()}
        self.params = {k: torch.stack([init[k][0 if same_init else r] for r in range(n_models)]).requires_grad_(True)
                       for k in self.NAMES}
        self.mask = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)

    def parameters(self) -> list[torch.Tensor]:
        """The leaf tensors, each stacked over the models (leading axis n_models)."""
        return [self.params[k] for k in self.NAMES]

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Output logits (R, B, T, V), attention logits (R, B, T, T) (masked entries -inf) and weights."""
        if tokens.dtype != torch.long or tokens.ndim != 2 or tokens.shape[1] != self.length:
            raise ValueError(f"tokens must be int64 of shape (batch, {self.length}); got {tokens.dtype} "
                             f"{tuple(tokens.shape)}")
        W = self.params
        R, (B, T), d = self.n_models, tokens.shape, self.width
        x = W["emb"][:, tokens].reshape(R, B * T, d)                      # (R, B*T, d)
        qkv = torch.bmm(layer_norm(x), torch.cat([W["wq"], W["wk"], W["wv"]], -1)).view(R, B, T, 3, d)
        q, k, v = qkv.unbind(3)
        if self.qk_norm.all():
            q, k = layer_norm(q), layer_norm(k)
        elif self.qk_norm.any():
            sel = self.qk_norm.view(-1, 1, 1, 1)
            q = torch.where(sel, layer_norm(q), q)
            k = torch.where(sel, layer_norm(k), k)
        logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        logits = logits.masked_fill(self.mask, float("-inf"))
        a = torch.softmax(logits, -1)
        x = x + torch.bmm(torch.matmul(a, v).view(R, B * T, d), W["wo"])
        x = x + torch.bmm(torch.relu(torch.bmm(layer_norm(x), W["w1"])), W["w2"])
        z = torch.bmm(layer_norm(x), W["wu"]).view(R, B, T, -1)
        return z, logits, a


def _metrics(model: TinyAttention, tokens: torch.Tensor, logP: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        z, logits, a = model.forward(tokens)
        logz = torch.logsumexp(z, -1)
        logq = z - logz.unsqueeze(-1)
        prev = tokens.expand(model.n_models, -1, -1)
        ce, h = expected_cross_entropy(logq, logP, prev)
        finite = logits.masked_fill(model.mask, 0.0)
        ent = attention_entropy(a)[..., 1:]                               # query 0 sees one key: entropy 0
        return {"loss": ce.mean((1, 2)), "floor": h.mean((1, 2)),
                "max_logit": finite.abs().amax((1, 2, 3)), "attn_entropy": ent.mean((1, 2)),
                "log_z": logz.mean((1, 2)), "pattern": a[:, 0]}


def train_side_by_side(logP: torch.Tensor, lrs: Sequence[float], qk_norm: Sequence[bool], *, width: int,
                       length: int, steps: int, batch: int, seed: int, z_loss: Sequence[float] | float = 0.0,
                       warmup: float = 0.1, weight_decay: float = 0.0, eval_every: int = 10, n_eval: int = 128,
                       same_init: bool = True) -> Iterator[tuple[int, dict]]:
    r"""Train one model per (lr, qk_norm, z_loss) triple on the same batches; yield the history as it grows.

    Adam (``kllab.maths.optim.Adam``, betas (0.9, 0.95)) with a linear warm-up over the first ``warmup``
    fraction of the steps, then cosine decay to 0; optional independent weight decay
    :math:`\theta \leftarrow (1 - \lambda \eta_t/\eta)\theta` (AdamW, decoupled, scaled by the schedule only).
    Each step draws a fresh batch from the source (infinite data); every model sees the same batches.
    A model whose loss becomes non-finite is frozen from then on (its metrics stay those of its last finite
    evaluation, its ``diverged`` flag is set).

    Yields ``(step, history)`` after every evaluation (step 0 first, the last at ``steps``): ``history`` has
    ``"step"`` (list of ints) and, per name in :data:`METRICS`, a tensor (n_evals, n_models), plus
    ``"diverged"`` (bool tensor, n_models), ``"init_loss"`` (tensor, n_models) and ``"pattern"`` (the attention
    weights (n_models, T, T) of the first evaluation sequence, now). The metrics, on ``n_eval`` held-out
    sequences: ``loss`` and ``floor`` (the means of :func:`expected_cross_entropy`'s two terms over every position),
    ``max_logit`` (the largest |attention logit|), ``attn_entropy`` (the mean attention entropy of queries 1..T-1,
    query 0 having one key), ``log_z`` (the mean log-normaliser of the output logits).
    """
    _check_transition(logP)
    lrs = [check_real("lrs", float(x), low=1e-6, high=100.0) for x in lrs]
    R = len(lrs)
    if R == 0:
        raise ValueError("lrs must hold at least one learning rate; got none")
    zl = [float(z_loss)] * R if isinstance(z_loss, (int, float)) else [float(v) for v in z_loss]
    if len(zl) != R:
        raise ValueError(f"z_loss must be one number or {R} numbers (one per learning rate); got {len(zl)}")
    for v in zl:
        check_real("z_loss", v, low=0.0, high=1.0)
    steps = check_int("steps", steps, low=1, high=100_000)
    batch = check_int("batch", batch, low=1, high=4096)
    seed = check_int("seed", seed, low=0)
    warmup = check_real("warmup", warmup, low=0.0, high=1.0)
    weight_decay = check_real("weight_decay", weight_decay, low=0.0, high=1.0)
    eval_every = check_int("eval_every", eval_every, low=1)
    V = logP.shape[0]
    g = torch.Generator().manual_seed(seed)
    model = TinyAttention(R, V, width, length, qk_norm, g, same_init=same_init)
    data_g = torch.Generator().manual_seed(seed + 7919)
    eval_tokens = sample_bigram(logP, n_eval, length, data_g)
    opt = Adam(model.parameters(), lr=1.0, betas=(0.9, 0.95))
    lrs_t = torch.tensor(lrs)
    zl_t = torch.tensor(zl).view(R, 1, 1)
    n_warm = max(1, round(warmup * steps))
    diverged = torch.zeros(R, dtype=torch.bool)
    hist: dict = {"step": [], **{k: [] for k in METRICS}}

    def record(step):
        m = _metrics(model, eval_tokens, logP)
        for k in METRICS:
            if hist[k]:
                m[k] = torch.where(diverged | ~torch.isfinite(m[k]), hist[k][-1], m[k])
            hist[k].append(m[k])
        hist["step"].append(step)
        out = {k: torch.stack(hist[k]) for k in METRICS}
        out["step"], out["diverged"], out["init_loss"] = list(hist["step"]), diverged.clone(), hist["loss"][0]
        out["pattern"] = m["pattern"]
        return out

    yield 0, record(0)
    chunk = max(1, eval_every)
    for start in range(0, steps, chunk):
        n = min(chunk, steps - start)
        data = sample_bigram(logP, n * batch, length, data_g).view(n, batch, length)
        for i in range(n):
            t = start + i + 1
            frac = t / n_warm if t <= n_warm else 0.5 * (1 + math.cos(math.pi * (t - n_warm) / max(1, steps - n_warm)))
            z, _, _ = model.forward(data[i])
            logz = torch.logsumexp(z[..., :-1, :], -1)
            target = data[i][:, 1:].expand(R, -1, -1)
            nll = logz - z[..., :-1, :].gather(-1, target.unsqueeze(-1)).squeeze(-1)
            per_model = (nll + zl_t * logz ** 2).mean((1, 2))
            bad = ~torch.isfinite(per_model)
            diverged |= bad
            opt.zero_grad()
            torch.where(diverged, torch.zeros_like(per_model), per_model).sum().backward()
            adam_step_per_model(opt, torch.where(diverged, 0.0, lrs_t * frac), frozen=diverged,
                                weight_decay=weight_decay * frac)
        yield start + n, record(start + n)


def adam_step_per_model(opt: Adam, lr: torch.Tensor, *, frozen: torch.Tensor | None = None,
                        weight_decay: float = 0.0) -> None:
    r"""One step of ``opt`` (a :class:`~kllab.maths.optim.Adam` over tensors stacked on a leading model axis) with
    a step size per model: :math:`\theta_r \leftarrow (1 - \lambda)\,(\theta_r - \eta_r u_r)`.

    Adam's step is :math:`-\eta\, u` with :math:`u = \hat m / (\sqrt{\hat v} + \epsilon)`, linear in :math:`\eta`:
    ``opt`` steps at size 1 (its moments are per element, so each model keeps its own), and model r's move is
    scaled by ``lr[r]``. The same iterates as one ``Adam(lr=lr[r])`` per model (``tests/maths/test_attention.py``).
    ``frozen`` models (a bool per model) keep their weights; a non-finite gradient of theirs is zeroed.
    ``weight_decay`` is decoupled (AdamW's, "independent": not multiplied by the step size).
    """
    lr = torch.as_tensor(lr, dtype=opt.params[0].dtype)
    if lr.ndim != 1 or lr.shape[0] != opt.params[0].shape[0] or torch.isnan(lr).any() or (lr < 0).any():
        raise ValueError(f"lr must be one non-negative step size per model, shape ({opt.params[0].shape[0]},); "
                         f"got {tuple(lr.shape)} {lr.tolist() if lr.numel() < 20 else ''}")
    weight_decay = check_real("weight_decay", weight_decay, low=0.0, high=1.0)
    before = [p.detach().clone() for p in opt.params]
    if frozen is not None and frozen.any():
        for p in opt.params:
            if p.grad is not None:
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
    opt.lr = 1.0
    opt.step()
    with torch.no_grad():
        for p, b in zip(opt.params, before):
            shape = (-1,) + (1,) * (p.ndim - 1)
            p.sub_(b).mul_(lr.view(shape)).add_(b)
            if weight_decay:
                p.mul_(1 - weight_decay)
            if frozen is not None and frozen.any():
                p.copy_(torch.where(frozen.view(shape), b, p))


def lr_sensitivity(final_loss, init_loss, best) -> float:
    r"""LR sensitivity E_eta[min(L(eta), L_0) - L*] (Wortsman et al., 2023, eq. 1) over a grid of learning rates.

    Parameters
    ----------
    final_loss : (n_lr,) the final loss at each learning rate (a non-finite value counts as diverged: L_0).
    init_loss : float or (n_lr,), the loss at initialisation L_0.
    best : float, L* (the best loss over the grid, or a known floor such as the source's entropy rate);
        must not exceed the clipped losses.
    """
    final = torch.as_tensor(final_loss, dtype=torch.float64).flatten()
    if final.numel() == 0:
        raise ValueError("final_loss must hold at least one loss; got none")
    if torch.isnan(torch.as_tensor(init_loss, dtype=torch.float64)).any():
        raise ValueError("init_loss must not contain NaN")
    init = torch.as_tensor(init_loss, dtype=torch.float64).expand_as(final)
    best = check_real("best", float(best))
    clipped = torch.where(torch.isfinite(final), torch.minimum(final, init), init)
    if (clipped < best - 1e-9).any():
        raise ValueError(f"best must be <= every clipped loss (it is the best or a floor); got best={best:.6g} "
                         f"and a clipped loss of {float(clipped.min()):.6g}")
    return float((clipped - best).mean())
