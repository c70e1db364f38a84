"""The version of swcdata: defined here only (pyproject.toml reads it; `swcdata.__version__` re-exports it)."""

__version__ = "0.1.0"
