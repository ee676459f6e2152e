"""Hyperparameter declarations: every parameter is declared once, next to the code using it.

A :class:`Param` carries type, default (optionally per profile), description and the
search range Optuna uses. Components declare a tuple of them; :func:`resolve` turns user
overrides into a validated, typed ``dict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ParameterError


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a tokenizer, recommender or encoder.

    ``low``/``high`` (with ``log``) or ``choices`` define the search space; a parameter
    with neither is fixed during tuning. ``profiles`` overrides ``default`` per profile.
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

    @property
    def tunable(self) -> bool:
        return self.choices is not None or (self.low is not None and self.high is not None)

    def default_for(self, profile: str) -> Any:
        return self.profiles.get(profile, self.default)

    def coerce(self, value: Any, owner: str) -> Any:
        """Convert ``value`` (possibly a CLI string) to this parameter's type."""
        if value is None:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return value.lower() in {"true", "1", "yes"}
            return self.type(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{owner}: parameter {self.name!r} expects {self.type.__name__}, got {value!r}"
            ) from None


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
