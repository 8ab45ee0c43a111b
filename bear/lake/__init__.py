"""Layer `lake`: the lake's layout, Parquet encoding, manifests, run-state records and sinks.

Imports `core` and `config`."""
