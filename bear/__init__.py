"""bear: deterministic, messy, synthetic e-commerce history for a data lake's raw zone."""

__version__ = "0.1.0"
