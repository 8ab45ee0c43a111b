"""bear: deterministic, messy, synthetic e-commerce history for a data lake's raw zone."""

# The generator version: recorded in every manifest and plan, and pinned with the smoke lake's bytes in
# tests/golden/smoke.json. Bump it with any change to what a config writes.
__version__ = "0.4.0"
