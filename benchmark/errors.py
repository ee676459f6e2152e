"""Errors the harness raises on purpose: one line that names the culprit and the mend."""

from __future__ import annotations


class BenchmarkError(Exception):
    """Base class: the CLI prints the message as a single line and exits with status 2."""


class DatasetError(BenchmarkError):
    """A dataset file or field is malformed (the message names file, line and field)."""


class PluginError(BenchmarkError):
    """A plugin, method or hook name is unknown, or a plugin is broken."""


class ParameterError(BenchmarkError):
    """A parameter or option is unknown, has a value of the wrong type or lies outside its range."""


class MissingExtraError(ParameterError):
    """A method needs an optional extra that is not installed (the message names the
    ``pip install 'genrec-bench[EXTRA]'`` line); raised when the method is resolved."""


class CompatibilityError(BenchmarkError):
    """A tokenizer and a recommender cannot be paired (identifier kinds differ)."""


class StoreError(BenchmarkError):
    """A results store or Optuna storage URL cannot be opened (the message names the URL)."""
