"""The package version, defined here once (pyproject.toml reads it; ``gimm_trt.__version__`` re-exports it)."""

__version__ = "0.2.0"
