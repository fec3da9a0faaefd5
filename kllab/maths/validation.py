"""Checks for user input, shared by the library and the notebooks' setup cells.

Every check raises an error whose message names the parameter, says what is allowed and shows
what was given: :class:`TypeError` for a value of the wrong kind (a string where a number belongs,
``temperature must be a real number; got '2' (str)``), :class:`ValueError` for a value of the right
kind outside what is allowed (``temperature must be > 0; got 0.0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import torch

DIRECTIONS = ("forward", "reverse")


def check_choice(name: str, value, allowed: Sequence):
    """Return ``value`` if it is one of ``allowed``.

    >>> check_choice("direction", "forward", DIRECTIONS)
    'forward'
    """
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number inside the given bounds.

    >>> check_real("temperature", 2, low=0, low_open=True)
    2.0
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number; got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}; got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high:g}; got {value!r}")
    return value


def check_positive(name: str, value) -> float:
    """Return ``value`` as a float if it is finite and > 0.

    >>> check_positive("temperature", 0.5)
    0.5
    """
    return check_real(name, value, low=0.0, low_open=True)


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` if it is an integer inside ``[low, high]``.

    >>> check_int("width", 64, low=1)
    64
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool (papermill passes ``True``/``False`` as bools)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")
    return value


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise if two tensors differ in shape (no silent broadcasting of distributions)."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape; "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")


def check_no_nan(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` holds a NaN."""
    if torch.isnan(x).any():
        raise ValueError(f"{name} must not contain NaN; got {int(torch.isnan(x).sum())} NaN value(s)")


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` holds a NaN or an infinite value (NaN is named first)."""
    check_no_nan(name, x)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite; got {int((~torch.isfinite(x)).sum())} infinite value(s)")


def check_real_array(name: str, x, *, ndim: int | None = None, min_ndim: int | None = None):
    """``x`` (an array-like or a tensor) as a float64 NumPy array, checked: real numbers, ``ndim`` axes exactly
    or at least ``min_ndim``, no NaN (named first), no infinite value.

    >>> check_real_array("x", [[1, 2]], ndim=2).dtype
    dtype('float64')
    >>> check_real_array("x", [1.0, float("nan")])
    Traceback (most recent call last):
    ...
    ValueError: x must not contain NaN; got 1 NaN value(s)
    """
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers; got {type(x).__name__}") from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes; got shape {a.shape}")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axis (axes); got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name} must not contain NaN; got {int(np.isnan(a).sum())} NaN value(s)")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite; got {int((~np.isfinite(a)).sum())} infinite value(s)")
    return a


def check_log_probs(name: str, logp: torch.Tensor, *, atol: float = 1e-4) -> None:
    """Raise unless ``logp`` holds log-probabilities on its last axis.

    Allowed: finite values and ``-inf`` (probability 0); each row must satisfy
    ``logsumexp(logp) = 0`` within ``atol``. ``kllab`` never renormalises silently.
    """
    if not torch.is_tensor(logp):
        raise ValueError(f"{name} must be a torch.Tensor of log-probabilities; got {type(logp).__name__}")
    if not logp.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {logp.dtype}")
    if logp.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the outcomes); got a scalar")
    check_no_nan(name, logp)
    if (logp == math.inf).any():
        raise ValueError(f"{name} must not contain +inf (a log-probability is <= 0); got +inf")
    total = torch.logsumexp(logp.detach(), dim=-1)
    bad = (total.abs() > atol) | ~torch.isfinite(total)
    if bad.any():
        worst = float(total[bad].flatten()[0])
        raise ValueError(
            f"{name} must be log-probabilities: logsumexp over the last axis must be 0; "
            f"got {worst:.4g} in {int(bad.sum())} row(s). Did you pass logits? "
            f"Apply torch.log_softmax(x, dim=-1) first, or use kl_from_logits.")
