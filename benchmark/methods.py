"""A method resolved once per run: its specs, final parameters and versions.

``run``, ``tune`` and the runner resolve a method here once and pass the result on, to
the fit, the run key and the study; nothing resolves the same run twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark import plugins
from benchmark.components import MethodSpec, RecommenderSpec, TokenizerSpec, flatten, split_dotted
from benchmark.errors import PluginError
from benchmark.params import key_values, profile_chain, resolve


@dataclass
class ResolvedMethod:
    """``spec`` with its tokenizer's and recommender's specs and final parameters, and the
    ``{plugin: version}`` part of its run key (:func:`benchmark.plugins.code_hashes`)."""

    spec: MethodSpec
    tokenizer: TokenizerSpec
    recommender: RecommenderSpec
    tokenizer_params: dict[str, Any]
    recommender_params: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        return flatten(self.tokenizer_params, self.recommender_params)

    @property
    def key_params(self) -> dict[str, Any]:
        """The parameters a run key hashes: :attr:`params` without the ``unkeyed_default``
        parameters left at their default (:func:`benchmark.params.key_values`)."""
        return flatten(key_values(self.tokenizer.params, self.tokenizer_params),
                       key_values(self.recommender.params, self.recommender_params))


def resolve_method(name: str, profile: str, overrides: dict[str, Any] | None = None) -> ResolvedMethod:
    """Method spec with its final parameters: declared defaults < method < profile < user.

    The profile must be a known one, every value lies within its declared bounds, and the
    tokenizer's and recommender's ``validate`` callables accept the result, so a run that
    resolves here does not fail on its parameters later.
    """
    plugins.check_profile(profile)
    spec, argument = plugins.get_method(name)
    chosen = dict(spec.defaults)
    for base in reversed(profile_chain(profile)):  # a profile's own values over its base's
        chosen.update(spec.profiles.get(base, {}))
    if argument is not None and spec.argument_param:
        chosen[spec.argument_param] = argument
    chosen.update(overrides or {})
    tok_over, rec_over = split_dotted(chosen, f"method {name!r}")
    tokenizer = plugins.get_tokenizers()[spec.tokenizer]
    recommender = plugins.get_recommenders()[spec.recommender]
    resolved = ResolvedMethod(
        spec=spec,
        tokenizer=tokenizer,
        recommender=recommender,
        tokenizer_params=resolve(tokenizer.params, profile, tok_over, f"tokenizer {tokenizer.name!r}"),
        recommender_params=resolve(recommender.params, profile, rec_over, f"recommender {recommender.name!r}"),
        versions=plugins.code_hashes(name),
    )
    if tokenizer.validate is not None:
        tokenizer.validate(resolved.tokenizer_params)
    if recommender.validate is not None:
        recommender.validate(resolved.recommender_params)
    return resolved


def _specs(name: str) -> tuple[TokenizerSpec, RecommenderSpec]:
    """The tokenizer and recommender specs of method ``name``."""
    spec, _ = plugins.get_method(name)
    return plugins.get_tokenizers()[spec.tokenizer], plugins.get_recommenders()[spec.recommender]


def declared_params(name: str) -> set[str]:
    """Dotted names of every parameter the method's tokenizer and recommender declare."""
    tokenizer, recommender = _specs(name)
    return {f"tokenizer.{p.name}" for p in tokenizer.params} | {
        f"recommender.{p.name}" for p in recommender.params
    }


def comparable_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """A stored run's ``params`` without the ``unkeyed_default`` parameters left at their
    declared default, as a run key leaves them out: a parameter added to a plugin later, whose
    default keeps what the code did before, then does not make the runs stored before it a
    different configuration from those stored after. ``params`` unchanged for a method not
    registered here (a plugin not loaded)."""
    try:
        tokenizer, recommender = _specs(name)
    except (PluginError, KeyError):
        return dict(params)
    tokenizer_values, recommender_values = split_dotted(params, f"stored run of {name!r}")
    return flatten(key_values(tokenizer.params, tokenizer_values), key_values(recommender.params, recommender_values))
