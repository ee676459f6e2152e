"""The plugin manager: built-ins, entry points and single-file plugins, one mechanism.

Built-in plugins are listed in :data:`DEFAULT_PLUGINS` and registered with the same call
as a third-party plugin. Entry points in group ``genrec_bench`` are loaded unless
``GENREC_BENCH_LOAD_PLUGINS`` restricts them (a comma-separated allow-list; empty loads
none). Components are reached through the typed ``get_*`` wrappers below.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from benchmark import __version__, hookspecs
from benchmark.components import (
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    MethodSpec,
    RecommenderSpec,
    TokenizerSpec,
)
from benchmark.errors import CompatibilityError, ParameterError, PluginError

DEFAULT_PLUGINS = (
    "plugins.datasets.movielens",
    "plugins.datasets.atomic",
    "plugins.datasets.amazon",
    "plugins.datasets.synthetic",
    "plugins.encoders.text",
    "plugins.tokenizers.atomic",
    "plugins.tokenizers.rqvae",
    "plugins.tokenizers.letter",
    "plugins.tokenizers.lcrec",
    "plugins.tokenizers.p5",
    "plugins.tokenizers.setrec",
    "plugins.tokenizers.lamia",
    "plugins.tokenizers.rqkmeans",
    "plugins.tokenizers.opq",
    "plugins.recommenders.popularity",
    "plugins.recommenders.recbole",
    "plugins.recommenders.seq2seq",
    "plugins.recommenders.decoder",
    "plugins.recommenders.setrec",
    "plugins.recommenders.llm",
    "plugins.recommenders.bigrec",
    "plugins.recommenders.rpg",
    "plugins.recommenders.cornac_bridge",
    "plugins.evaluators.coverage",
    "plugins.evaluators.beam_vs_exact",
    "plugins.evaluators.tokenizer_diagnostics",
    "plugins.methods.baselines",
    "plugins.methods.generative",
    "plugins.methods.setrec",
    "plugins.methods.llm",
    "plugins.methods.bigrec",
    "plugins.methods.lamia",
    "plugins.methods.rpg",
    "plugins.methods.cornac",
)
ENTRY_POINT_GROUP = "genrec_bench"
ALLOW_LIST_ENV = "GENREC_BENCH_LOAD_PLUGINS"
# Profiles every method understands; plugins add others by declaring them on a Param or MethodSpec.
BUILTIN_PROFILES = ("tiny", "cpu", "paper")

pm = pluggy.PluginManager(hookspecs.PROJECT)
pm.add_hookspecs(hookspecs)
_file_plugins: dict[str, str] = {}
_loaded = False


def _check(plugin_name: str) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=plugin_name)
        known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith(("register_", "on_"))))
        raise PluginError(
            f"plugin {plugin_name!r}: {exc}; known hooks: {known}"
        ) from None


def _register(plugin: object, name: str, origin: str) -> None:
    """``pm.register`` with a one-line error naming ``origin`` (the file or entry point), the
    hook and the argument names its specification has, when an implementation misnames them."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        if pm.get_plugin(name) is not None:  # pluggy < 1.6 registers part of a plugin before failing
            pm.unregister(name=name)
        raise PluginError(f"{origin}: {_signature_fault(plugin) or ' '.join(str(exc).split())}") from None
    _check(name)


def _signature_fault(plugin: object) -> str | None:
    """Which hook implementation of ``plugin`` takes arguments its specification lacks."""
    for attribute in dir(plugin):
        options = pm.parse_hookimpl_opts(plugin, attribute)
        if options is None:
            continue
        hook = options.get("specname") or attribute
        caller = getattr(pm.hook, hook, None)
        spec = getattr(caller, "spec", None)
        if spec is None:
            continue
        given = [n for n in inspect.signature(getattr(plugin, attribute)).parameters if n != "self"]
        unknown = [n for n in given if n not in spec.argnames]
        if unknown:
            return (f"hook {hook}({', '.join(given)}) takes unknown argument(s) {', '.join(unknown)}; "
                    f"write {hook}({', '.join(spec.argnames)}) (any subset of these names, in any order)")
    return None


def load_plugins() -> None:
    """Register built-ins and allowed entry points once per process."""
    global _loaded
    if _loaded:
        return
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
    _check("built-ins")
    installed = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    allow = os.environ.get(ALLOW_LIST_ENV)
    if allow is not None:
        wanted = [name.strip() for name in allow.split(",") if name.strip()]
        missing = [name for name in wanted if name not in installed]
        if missing:
            raise PluginError(
                f"{ALLOW_LIST_ENV}={allow}: {', '.join(map(repr, missing))} is not an installed entry point "
                f"of group {ENTRY_POINT_GROUP!r} (installed: {', '.join(sorted(installed)) or 'none'}); "
                "fix the name or pip install the plugin"
            )
        chosen = [installed[name] for name in wanted]
    elif not getattr(sys, "_genrec_bench_testing", False):
        chosen = list(installed.values())
    else:
        chosen = []
    for ep in chosen:
        if pm.get_plugin(ep.name) is None:
            _register(ep.load(), ep.name, f"entry point {ep.name!r} ({ep.value})")
    _loaded = True


def load_plugin_file(path: str | os.PathLike) -> str:
    """Register the module at ``path`` as a plugin (``--plugin path.py``); return its name."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"--plugin {path}: no such file")
    name = f"file:{path.resolve()}"
    if pm.get_plugin(name) is not None:
        return name
    spec = importlib.util.spec_from_file_location(f"genrec_bench_file_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PluginError(f"--plugin {path}: failed to import: {exc}") from exc
    _register(module, name, f"--plugin {path}")
    _file_plugins[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return name


# --------------------------------------------------------------------------- registries



@dataclass(frozen=True)
class Registered:
    """A spec and the plugin that registered it."""

    spec: Any
    plugin: str


def _collect(hook_name: str, kind: str) -> dict[str, Registered]:
    load_plugins()
    found: dict[str, Registered] = {}
    hook = getattr(pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):
        plugin = impl.plugin_name

        def register(spec: Any, _plugin: str = plugin) -> None:
            if spec.name in found:
                raise PluginError(
                    f"{kind} {spec.name!r} is registered by both {found[spec.name].plugin!r} "
                    f"and {_plugin!r}; rename one of them"
                )
            found[spec.name] = Registered(spec, _plugin)

        impl.function(register)
    return found


def _typed(hook_name: str, kind: str) -> Callable[[], dict[str, Any]]:
    def getter() -> dict[str, Any]:
        return {name: r.spec for name, r in _collect(hook_name, kind).items()}

    getter.__name__ = f"get_{hook_name.removeprefix('register_')}"
    getter.__doc__ = f"Every registered {kind}, by name."
    return getter


get_datasets: Callable[[], dict[str, DatasetSpec]] = _typed("register_datasets", "dataset")
get_encoders: Callable[[], dict[str, EncoderSpec]] = _typed("register_encoders", "encoder")
get_tokenizers: Callable[[], dict[str, TokenizerSpec]] = _typed("register_tokenizers", "tokenizer")
get_recommenders: Callable[[], dict[str, RecommenderSpec]] = _typed(
    "register_recommenders", "recommender"
)
get_evaluators: Callable[[], dict[str, EvaluatorSpec]] = _typed("register_evaluators", "evaluator")


def get_methods() -> dict[str, MethodSpec]:
    """Every registered method, each checked for a compatible pairing."""
    methods = _typed("register_methods", "method")()
    tokenizers, recommenders = get_tokenizers(), get_recommenders()
    for method in methods.values():
        check_pairing(method, tokenizers, recommenders)
    return methods


def check_pairing(
    method: MethodSpec,
    tokenizers: dict[str, TokenizerSpec],
    recommenders: dict[str, RecommenderSpec],
) -> None:
    """Raise a clear error unless the method's recommender accepts its tokenizer's kind."""
    if method.tokenizer not in tokenizers:
        raise PluginError(
            f"method {method.name!r} uses unknown tokenizer {method.tokenizer!r}; "
            f"known: {', '.join(sorted(tokenizers))}"
        )
    if method.recommender not in recommenders:
        raise PluginError(
            f"method {method.name!r} uses unknown recommender {method.recommender!r}; "
            f"known: {', '.join(sorted(recommenders))}"
        )
    kind = tokenizers[method.tokenizer].kind
    accepts = recommenders[method.recommender].accepts
    if kind not in accepts:
        raise CompatibilityError(
            f"method {method.name!r}: tokenizer {method.tokenizer!r} makes {kind!r} identifiers "
            f"but recommender {method.recommender!r} accepts only {', '.join(sorted(accepts))}; "
            "pair it with a tokenizer of an accepted kind"
        )


def _lookup(registry: dict[str, Any], name: str, kind: str) -> tuple[Any, str | None]:
    base, sep, argument = name.partition(":")
    spec = registry.get(base)
    if spec is None:
        raise PluginError(
            f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(registry))} "
            "(`genrec-bench plugins` lists them; a third-party one needs its plugin installed "
            "or --plugin FILE)"
        )
    takes = getattr(spec, "takes_argument", None)
    if takes is None:
        takes = getattr(spec, "argument_param", None) is not None
    if sep and not takes:
        raise PluginError(f"{kind} {base!r} takes no ':ARGUMENT' but got {name!r}")
    if takes and not argument and getattr(spec, "argument_required", True):
        raise PluginError(f"{kind} {base!r} needs an argument: write {base}:ARGUMENT")
    return spec, (argument or None)


def get_dataset(name: str) -> tuple[DatasetSpec, str | None]:
    """The dataset spec for ``name`` (or ``name:ARGUMENT``) and its argument."""
    return _lookup(get_datasets(), name, "dataset")


def get_method(name: str) -> tuple[MethodSpec, str | None]:
    """The method spec for ``name`` (or ``name:ARGUMENT``) and its argument."""
    return _lookup(get_methods(), name, "method")


def method_family(name: str) -> str:
    """The leaderboard family of method ``name``: ``baseline`` for a method marked so, else
    its recommender's declared ``family``; ``other`` when it declares none or the method is
    not registered here (a third-party plugin not loaded)."""
    try:
        spec, _ = get_method(name)
    except PluginError:
        return "other"
    if spec.baseline:
        return "baseline"
    recommender = get_recommenders().get(spec.recommender)
    return (recommender.family if recommender is not None else "") or "other"


def known_profiles() -> list[str]:
    """``tiny``, ``paper`` and every profile a registered parameter or method declares."""
    profiles = set(BUILTIN_PROFILES)
    for spec in get_methods().values():
        profiles.update(spec.profiles)
    for specs in (get_tokenizers(), get_recommenders(), get_encoders()):
        for spec in specs.values():
            for param in spec.params:
                profiles.update(param.profiles)
    return sorted(profiles)


def check_profile(profile: str) -> None:
    """Raise unless ``profile`` is one of :func:`known_profiles` (a typo would otherwise run,
    and be stored, with the default values)."""
    known = known_profiles()
    if profile not in known:
        raise ParameterError(
            f"--profile {profile!r}: no parameter or method declares this profile; known profiles: "
            f"{', '.join(known)}"
        )


# --------------------------------------------------------------------------- code hashes


def _source_files(module: ModuleType, seen: set[str]) -> None:
    """``module``'s file and, recursively, those of the modules of its own package it uses."""
    path = getattr(module, "__file__", None)
    if not path or path in seen:
        return
    seen.add(path)
    package = module.__name__.split(".", 1)[0]
    for value in list(vars(module).values()):
        used = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
        if used is not None and used.__name__.split(".", 1)[0] == package:
            _source_files(used, seen)


# Hashed once per loaded module: the code that runs is the code imported, even if its file
# is edited while a long run goes on.
_code_hashes: weakref.WeakKeyDictionary[ModuleType, str] = weakref.WeakKeyDictionary()


def plugin_code_hash(name: str) -> str:
    """Hash of plugin ``name``'s source: its module and the modules of its package it uses."""
    plugin = pm.get_plugin(name)
    if plugin is None:
        return "unknown"
    module = plugin if isinstance(plugin, ModuleType) else sys.modules.get(type(plugin).__module__)
    if module is None:
        return "unknown"
    if module not in _code_hashes:
        files: set[str] = set()
        _source_files(module, files)
        h = hashlib.sha256()
        for path in sorted(files):
            h.update(Path(path).name.encode())
            h.update(Path(path).read_bytes())
        _code_hashes[module] = h.hexdigest()[:12]
    return _code_hashes[module]


def code_hashes(method: str) -> dict[str, str]:
    """``{plugin: version}`` of the plugins that register ``method``, its tokenizer and its
    recommender: part of every run key (stored as ``info.code_hashes``).

    A plugin's entry is the ``version`` its specs used by the method declare (joined by
    ``+`` when they differ); where one of them declares none, the hash of the plugin's
    source (:func:`plugin_code_hash`), so editing an unversioned plugin re-runs its rows.
    """
    spec, _ = get_method(method)
    used = [
        _collect("register_methods", "method")[spec.name],
        _collect("register_tokenizers", "tokenizer")[spec.tokenizer],
        _collect("register_recommenders", "recommender")[spec.recommender],
    ]
    versions: dict[str, list[str]] = {}
    for registered in used:
        versions.setdefault(registered.plugin, []).append(registered.spec.version)
    return {owner: "+".join(dict.fromkeys(declared)) if all(declared) else plugin_code_hash(owner)
            for owner, declared in sorted(versions.items())}


# --------------------------------------------------------------------------- listing


def plugin_version(name: str) -> str:
    """Version of the distribution that ships plugin ``name`` (or a file hash)."""
    if name in _file_plugins:
        return f"file sha256:{_file_plugins[name]}"
    if name.startswith("plugins.") or name == "built-ins":
        return f"genrec-bench {__version__}"
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name and ep.dist is not None:
            return f"{ep.dist.name} {ep.dist.version}"
    return "unknown"


def describe_plugins() -> list[dict[str, Any]]:
    """One record per plugin: name, version, hooks implemented."""
    load_plugins()
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "version": plugin_version(name), "hooks": hooks})
    return rows


def plugin_versions() -> dict[str, str]:
    """``{plugin: version}`` for every loaded plugin, stored with each result."""
    return {row["name"]: row["version"] for row in describe_plugins()}
