"""One accepted range per knob parameter, recorded once in the catalog and read everywhere.

A notebook's knob parameters (``TEMPERATURE``, ``WIDTH``, ``BETA``...) each have one range in
``catalog.toml``, in the entry's ``ranges`` table::

    ranges = { TEMPERATURE = { min = 1.0, max = 10.0, scale = "log", step = 1.25 },
               WIDTH = { min = 2, max = 64, scale = "log", step = 2 },
               FAMILY = { choices = ["unigram", "bigram", "table"] } }

* ``min`` and ``max`` bound the values accepted, both included. Integers there make an integer
  parameter (a width, a rank), floats a real one.
* ``scale`` is ``"linear"`` or ``"log"`` (a log range has ``min > 0``).
* ``step`` is the distance between neighbouring positions of the panel's slider: an increment on a
  linear scale, a factor (> 1) on a log scale. Values between positions are still accepted.
* ``choices`` instead of a range: the values a categorical parameter takes. ``DIRECTION`` needs no
  entry: its choices are the entry's ``directions``.

The same record is read by the setup cell (:meth:`Ranges.check`), the knob panel
(:meth:`Ranges.widget`), ``kllab run -p`` and ``kllab sweep`` (:func:`check_parameters`, before
anything runs), ``kllab list`` and the tests, which run every notebook at both ends of every range.
Each range is chosen so that every value in it runs the notebook to its end in bounded time and memory.

>>> r = knob_ranges("P08")
>>> r.check("WIDTH", 4)
4
>>> r.check("WIDTH", 4000)
Traceback (most recent call last):
    ...
ValueError: WIDTH must be in [2, 64]; got 4000
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

from . import catalog

__all__ = ["Range", "Ranges", "knob_ranges", "check_parameters", "parse_range"]

SCALES = ("linear", "log")


@dataclass(frozen=True)
class Range:
    """The accepted values of one parameter: a closed interval with a scale and a step, or a list of choices."""

    name: str
    min: float | int | None = None
    max: float | int | None = None
    scale: str = "linear"
    step: float | int | None = None
    choices: tuple = ()

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    @property
    def integer(self) -> bool:
        return not self.choices and isinstance(self.min, int) and isinstance(self.max, int)

    @property
    def ends(self) -> list:
        """The values a test must try: both ends of the interval, or every choice."""
        return list(self.choices) if self.choices else [self.min, self.max]

    def describe(self) -> str:
        """``[2, 64] log x2``, ``[0, 1] step 0.05``, ``one of 'a', 'b'``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        step = f"x{self.step:g}" if self.scale == "log" else f"step {self.step:g}"
        return f"[{self.min:g}, {self.max:g}] {self.scale} {step}"

    def check(self, value):
        """Return ``value`` if it is accepted (ints stay ints, reals become floats); raise otherwise.

        A value of the wrong type raises ``TypeError``, one outside the range ``ValueError``; both
        name the parameter, what is allowed and what was given.
        """
        if self.choices:
            if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
                options = ", ".join(repr(c) for c in self.choices)
                raise ValueError(f"{self.name} must be one of {options}; got {value!r}")
            return value
        if self.integer:
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise TypeError(f"{self.name} must be an integer in [{self.min}, {self.max}]; "
                                f"got {value!r} ({type(value).__name__})")
            value = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"{self.name} must be a number in [{self.min:g}, {self.max:g}]; "
                                f"got {value!r} ({type(value).__name__})")
            value = float(value)
        if not (math.isfinite(value) and self.min <= value <= self.max):
            raise ValueError(f"{self.name} must be in [{self.min:g}, {self.max:g}]; got {value!r}")
        return value

    def positions(self, value=None) -> list:
        """The slider positions of an integer range (and ``value``, if given): min, min + step, ... or
        min, min * step, ..., always ending on max."""
        if not self.integer:
            raise ValueError(f"{self.name} is not an integer range; its slider is continuous")
        out, x = [], self.min
        while x < self.max:
            out.append(int(round(x)))
            x = x * self.step if self.scale == "log" else x + self.step
        out.append(self.max)
        if value is not None:
            out.append(self.check(value))
        return sorted(set(out))

    def widget(self, value, description: str = ""):
        """The panel's control for this parameter: it offers only values of the range."""
        from kllab.ui import widgets

        value = self.check(value)
        description = description or self.name.lower()
        if self.choices:
            return widgets.choice(list(self.choices), value, description)
        if self.integer:
            return widgets.options_slider(self.positions(value), value, description)
        if self.scale == "log":
            return widgets.log_slider(self.min, self.max, value, description, ratio=self.step)
        return widgets.slider(self.min, self.max, value, self.step, description)


def parse_range(name: str, spec: Mapping) -> Range:
    """A catalog ``ranges`` item as a :class:`Range`; a malformed one raises ``ValueError`` naming it."""
    where = f"catalog range of {name}"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} must be a table; got {spec!r}")
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        choices = spec["choices"]
        if extra or not isinstance(choices, list) or not choices:
            raise ValueError(f"{where}: a choices range has only a non-empty list 'choices'; got {dict(spec)!r}")
        return Range(name, choices=tuple(choices))
    missing = {"min", "max", "scale", "step"} - set(spec)
    extra = set(spec) - {"min", "max", "scale", "step"}
    if missing or extra:
        raise ValueError(f"{where} needs min, max, scale and step; missing {sorted(missing)}, unknown {sorted(extra)}")
    lo, hi, scale, step = spec["min"], spec["max"], spec["scale"], spec["step"]
    if any(isinstance(v, bool) or not isinstance(v, Real) for v in (lo, hi, step)):
        raise ValueError(f"{where}: min, max and step must be numbers; got {dict(spec)!r}")
    if isinstance(lo, int) != isinstance(hi, int):
        raise ValueError(f"{where}: min and max must both be integers or both floats; got {lo!r}, {hi!r}")
    if scale not in SCALES:
        raise ValueError(f"{where}: scale must be one of {SCALES}; got {scale!r}")
    if not lo < hi:
        raise ValueError(f"{where}: min must be < max; got [{lo}, {hi}]")
    if scale == "log" and (lo <= 0 or step <= 1):
        raise ValueError(f"{where}: a log range needs min > 0 and a step factor > 1; got min {lo}, step {step}")
    if scale == "linear" and step <= 0:
        raise ValueError(f"{where}: a linear range needs step > 0; got {step}")
    return Range(name, lo, hi, scale, step)


class Ranges:
    """The ranges of one catalog entry's parameters, its ``DIRECTION`` included."""

    def __init__(self, entry: catalog.Entry):
        self.entry = entry
        self.ranges: dict[str, Range] = {}
        direction = entry.knobs.get("direction")
        if direction and entry.directions and direction not in entry.ranges:
            self.ranges[direction] = Range(direction, choices=tuple(entry.directions))
        self.ranges.update((name, parse_range(name, spec)) for name, spec in entry.ranges.items())

    def __contains__(self, name: str) -> bool:
        return name in self.ranges

    def __getitem__(self, name: str) -> Range:
        try:
            return self.ranges[name]
        except KeyError:
            raise KeyError(f"{self.entry.id} has no catalog range for {name!r}; it has: "
                           f"{', '.join(self.ranges) or 'none'}") from None

    def __iter__(self):
        return iter(self.ranges.values())

    def check(self, name: str, value):
        """``value`` of parameter ``name`` if its range accepts it (see :meth:`Range.check`)."""
        return self[name].check(value)

    def widget(self, name: str, value, description: str = ""):
        """The panel control of parameter ``name``, starting at ``value`` (see :meth:`Range.widget`)."""
        return self[name].widget(value, description)


def knob_ranges(key: str) -> Ranges:
    """The catalog's ranges for a paper (``"P08"``), a slug or a notebook file name."""
    return Ranges(catalog.find(key))


def check_parameters(entry: catalog.Entry, params: Mapping, label: str = "") -> None:
    """Refuse a parameter value outside its catalog range before anything runs.

    ``label`` names the run or grid point in the message (``"P08 grid point WIDTH=4000, BETA=0.1"``).
    Raises ``ValueError`` (for a wrong type too: the command line has one kind of refusal).
    """
    ranges = Ranges(entry)
    for name, value in params.items():
        if name in ranges:
            try:
                ranges.check(name, value)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{label + ': ' if label else ''}{err}") from None

