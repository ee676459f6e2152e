"""Hyperparameter declarations: every parameter is declared once, next to the code using it.

A :class:`Param` carries type, default (optionally per profile), description and the
search range Optuna uses. Components declare a tuple of them; :func:`resolve` turns user
overrides into a validated, typed ``dict``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ParameterError

# A profile a parameter does not name takes its base profile's value: ``small`` (a small
# pretrained LLM, declared by the LLM methods) keeps the ``tiny`` budget everywhere else;
# ``cpu`` (the boards: the papers' method at a size a 2-core CPU trains to convergence)
# keeps tiny's model sizes and CPU-only choices (random init, no LoRA) where it names no
# value of its own, and names its own training budget, codebooks and schedule.
PROFILE_BASES = {"small": "tiny", "cpu": "tiny"}


def profile_chain(profile: str) -> list[str]:
    """``profile`` then its bases, nearest first (``small`` -> ``["small", "tiny"]``)."""
    chain = [profile]
    while chain[-1] in PROFILE_BASES:
        chain.append(PROFILE_BASES[chain[-1]])
    return chain


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a tokenizer, recommender or encoder.

    ``low``/``high`` (with ``log``) or ``choices`` define the search space; a parameter
    with neither is fixed during tuning. ``minimum``/``maximum`` are the values the code
    accepts at all (``epochs`` >= 1), checked on every value a user or a trial gives,
    whether or not the parameter is tuned; the search range must lie within them.
    ``options`` are the values a string parameter accepts at all (``precision``: fp32 or
    bf16), checked the same way, so a misspelt value fails when the method is resolved,
    before any fitting; the defaults and ``choices`` must be among them.
    ``profiles`` overrides ``default`` per profile. A float must be finite (``inf`` and
    ``nan`` are refused) unless ``nonfinite`` declares them meaningful. ``unkeyed_default``
    marks a parameter added after rows were stored whose default reproduces what those
    rows did: at that default it stays out of the run key, so the rows keep their keys (any
    other value is keyed as usual).
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    profiles: Mapping[str, Any] = field(default_factory=dict)
    minimum: float | None = None
    maximum: float | None = None
    unkeyed_default: bool = False
    nonfinite: bool = False
    options: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # A declaration error of the plugin's author: fail when the plugin is imported.
        values = {"low": self.low, "high": self.high, "default": self.default,
                  **{f"{profile} default": value for profile, value in self.profiles.items()}}
        for what, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not self._within(value):
                raise ValueError(f"Param {self.name!r}: {what} {value!r} lies outside {self.allowed}")
        if self.options is not None:
            named = [(what, value) for what, value in values.items() if what not in ("low", "high")]
            for what, value in named + [("search choice", value) for value in self.choices or ()]:
                if value not in self.options:
                    raise ValueError(f"Param {self.name!r}: {what} {value!r} is not one of {self.allowed}")

    @property
    def allowed(self) -> str:
        """The accepted values in words, e.g. ``1 or more``, ``0.0 to 1.0`` or ``fp32 or bf16``."""
        if self.options is not None:
            return _either(self.options)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"{self.minimum} or more"
        if self.maximum is not None:
            return f"{self.maximum} or less"
        return "any value"

    def _within(self, value: float) -> bool:
        return ((self.minimum is None or value >= self.minimum)
                and (self.maximum is None or value <= self.maximum))

    @property
    def bounded(self) -> bool:
        """Whether the code accepts only some values (a range or named options)."""
        return self.options is not None or self.minimum is not None or self.maximum is not None

    @property
    def tunable(self) -> bool:
        return self.choices is not None or (self.low is not None and self.high is not None)

    def default_for(self, profile: str) -> Any:
        named = [p for p in profile_chain(profile) if p in self.profiles]
        return self.profiles[named[0]] if named else self.default

    def coerce(self, value: Any, owner: str) -> Any:
        """Convert ``value`` (possibly a CLI string) to this parameter's type and check that
        it lies within ``minimum``/``maximum``."""
        if value is None:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return value.lower() in {"true", "1", "yes"}
            converted = self.type(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{owner}: parameter {self.name!r} expects {self.type.__name__}, got {value!r}"
            ) from None
        if isinstance(converted, float) and not math.isfinite(converted) and not self.nonfinite:
            raise ParameterError(
                f"{owner}: parameter {self.name!r} is {converted!r}; give a finite number"
                + (f" ({self.allowed})" if self.minimum is not None or self.maximum is not None else "")
            )
        if isinstance(converted, (int, float)) and not isinstance(converted, bool) \
                and not self._within(converted):
            raise ParameterError(
                f"{owner}: parameter {self.name!r} is {converted!r}, outside its allowed range "
                f"({self.allowed}); give a value in that range"
            )
        if self.options is not None and converted not in self.options:
            close = difflib.get_close_matches(str(converted), self.options, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ParameterError(f"{owner}: parameter {self.name!r} is {converted!r}; give {self.allowed}{hint}")
        return converted


def _either(options: tuple[str, ...]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"


def resolve(
    declared: Iterable[Param],
    profile: str,
    overrides: Mapping[str, Any] | None = None,
    owner: str = "component",
) -> dict[str, Any]:
    """Defaults for ``profile`` with ``overrides`` applied; unknown names are an error."""
    by_name = {p.name: p for p in declared}
    values = {name: p.default_for(profile) for name, p in by_name.items()}
    for name, value in (overrides or {}).items():
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise ParameterError(
                f"{owner}: unknown parameter {name!r}; known parameters: {known}"
            )
        values[name] = by_name[name].coerce(value, owner)
    return values


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Parse ``key=value`` strings from the command line."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--param {item!r}: write it as NAME=VALUE, e.g. recommender.epochs=5")
        parsed[key.strip()] = value.strip()
    return parsed


def key_values(declared: Iterable[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the ``unkeyed_default`` parameters left at their declared default:
    what a run key hashes."""
    by_name = {p.name: p for p in declared}
    return {name: value for name, value in values.items()
            if not (name in by_name and by_name[name].unkeyed_default and value == by_name[name].default)}
