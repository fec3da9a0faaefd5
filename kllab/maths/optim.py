r"""Adam, written out: the one optimiser kllab's toys train with.

``torch.optim.Adam`` would do, but constructing any ``torch.optim`` optimiser imports
``torch._dynamo``: one to two seconds of CPU that every fresh kernel (every dashboard a reader
opens) would pay before its first trained figure. :class:`Adam` performs the same floating-point
operations as ``torch.optim.Adam`` on the CPU (``tests/maths/test_optim.py`` checks that the iterates
are identical, with and without weight decay), with none of its machinery.

.. math::
    g \leftarrow \nabla_\theta + \lambda\theta, \quad
    m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
    \theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,\frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015 (arXiv:1412.6980).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .validation import check_positive, check_real

__all__ = ["Adam"]


class Adam:
    """Adam on a list of tensors, with the defaults and the update of ``torch.optim.Adam``.

    Parameters
    ----------
    params : iterable of leaf tensors with ``requires_grad``
    lr : float > 0
        The step size η; the attribute ``lr`` may be changed between steps (a schedule).
    betas : (float, float) in [0, 1)
        β₁, β₂.
    eps : float > 0
    weight_decay : float ≥ 0
        λ, added to the gradient as λθ (``torch.optim.Adam``'s coupled weight decay).
    maximize : bool
        Ascend instead of descend.

    A parameter whose ``.grad`` is None is left alone, as torch does, and its step count (which the
    bias corrections use) does not advance: like torch, each parameter counts its own steps.

    >>> x = torch.tensor([1.0, -2.0], requires_grad=True); opt = Adam([x], lr=0.1)
    >>> for _ in range(100):
    ...     opt.zero_grad(); (x ** 2).sum().backward(); opt.step()
    >>> bool(x.abs().max() < 0.05)
    True
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, maximize: bool = False):
        self.params = list(params)
        if not self.params or not all(torch.is_tensor(p) and p.requires_grad for p in self.params):
            raise ValueError(f"params must be a non-empty list of tensors with requires_grad=True; "
                             f"got {[type(p).__name__ for p in self.params]}")
        self.lr = check_positive("lr", lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers (beta1, beta2); got {betas!r}")
        self.betas = tuple(check_real("betas", b, low=0.0, high=1.0, high_open=True) for b in betas)
        self.eps = check_positive("eps", eps)
        self.weight_decay = check_real("weight_decay", weight_decay, low=0.0)
        self.maximize = bool(maximize)
        self.t = 0                                    # calls of step()
        self.steps = [0] * len(self.params)           # updates of each parameter (torch's per-parameter 'step')
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Forget the parameters' gradients (set them to None)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update from the parameters' ``.grad``."""
        self.t += 1
        b1, b2 = self.betas
        for i, (p, m, v) in enumerate(zip(self.params, self.m, self.v)):
            if p.grad is None:
                continue
            self.steps[i] += 1
            step_size = self.lr / (1 - b1 ** self.steps[i])
            c2_sqrt = (1 - b2 ** self.steps[i]) ** 0.5
            g = -p.grad if self.maximize else p.grad
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / c2_sqrt).add_(self.eps), value=-step_size)
