"""genrec-bench: a plugin-based benchmark for generative recommendation."""

from benchmark.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl", "hookspec"]
