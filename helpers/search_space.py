"""A sweep's search space: its dimensions, the grid of a finite space, and the space as plain JSON.

The JSON form is what a sweep records in its study, so that a worker process on another machine knows the
space without unpickling anything (``helpers.sweeps``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Categorical", "IntRange", "LogUniform", "Uniform", "Space", "suggest", "grid_values", "grid_size",
           "grid_points", "point_key", "space_to_json", "space_from_json"]


@dataclass(frozen=True)
class Categorical:
    """A choice among a few values (numbers, strings, bools)."""

    choices: tuple

    def __init__(self, choices):
        choices = tuple(choices)
        if not choices:
            raise ValueError("Categorical needs at least one choice, e.g. Categorical(['sgd', 'adam']).")
        object.__setattr__(self, "choices", choices)


@dataclass(frozen=True)
class IntRange:
    """An integer from ``low`` to ``high`` inclusive (optionally every ``step``, or log-spaced)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self):
        if self.low > self.high:
            raise ValueError(f"IntRange needs low <= high, got low={self.low}, high={self.high}.")


@dataclass(frozen=True)
class LogUniform:
    """A positive float drawn uniformly on a log scale between ``low`` and ``high``."""

    low: float
    high: float

    def __post_init__(self):
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform needs 0 < low < high, got low={self.low}, high={self.high}.")


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly between ``low`` and ``high``."""

    low: float
    high: float

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got low={self.low}, high={self.high}.")


Space = dict[str, Categorical | IntRange | LogUniform | Uniform]
KINDS = {cls.__name__: cls for cls in (Categorical, IntRange, LogUniform, Uniform)}


def suggest(trial: Any, name: str, dim) -> Any:
    """Ask an optuna trial for one value of one declared dimension."""
    if isinstance(dim, Categorical):
        return trial.suggest_categorical(name, list(dim.choices))
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
    if isinstance(dim, LogUniform):
        return trial.suggest_float(name, dim.low, dim.high, log=True)
    if isinstance(dim, Uniform):
        return trial.suggest_float(name, dim.low, dim.high)
    raise ValueError(f"Search space entry {name!r} is {dim!r}; use Categorical, IntRange, LogUniform or Uniform.")


def grid_values(space: Space) -> dict[str, list]:
    """Turn a space of finite dimensions into the list of values of each dimension."""
    values = {}
    for name, dim in space.items():
        if isinstance(dim, Categorical):
            values[name] = list(dim.choices)
        elif isinstance(dim, IntRange) and not dim.log:
            values[name] = list(range(dim.low, dim.high + 1, dim.step))
        else:
            raise ValueError(f"The grid sampler needs finite dimensions, but {name!r} is {dim!r}; "
                             "declare it as Categorical([...]) or a linear IntRange, or use sampler='tpe'/'random'.")
    return values


def grid_size(space: Space) -> int:
    """Number of points of a finite space (what sampler='grid' visits)."""
    return math.prod(len(v) for v in grid_values(space).values())


def grid_points(space: Space) -> list[dict]:
    """Every grid point, in the order the space declares its values (the same order every call)."""
    values = grid_values(space)
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def point_key(params: dict) -> tuple:
    """A hashable key of one point (params of a trial, or a grid point)."""
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def space_to_json(space: Space) -> dict:
    """The space as plain JSON data: ``{"lr": {"kind": "LogUniform", "low": 0.001, "high": 0.1}, ...}``."""
    out = {}
    for name, dim in space.items():
        if type(dim).__name__ not in KINDS:
            raise ValueError(f"Search space entry {name!r} is {dim!r}; use Categorical, IntRange, LogUniform or Uniform.")
        fields = asdict(dim)
        if isinstance(dim, Categorical):
            fields["choices"] = list(dim.choices)
        out[name] = {"kind": type(dim).__name__, **fields}
    if space_from_json(out) != space:  # e.g. a choice JSON cannot carry (optuna takes None, bools, numbers, strings)
        raise ValueError(f"The search space {space!r} cannot be written as plain data; keep Categorical choices to "
                         "numbers, strings, bools and None.")
    return out


def space_from_json(data: dict) -> Space:
    """The space that ``space_to_json`` wrote."""
    space: Space = {}
    for name, fields in data.items():
        fields = dict(fields)
        cls = KINDS[fields.pop("kind")]
        space[name] = cls(**fields)
    return space
