"""Layer `gen`: pure generation with numpy and Arrow.

Imports `core` and `config` types only: no Ray, Hydra, fsspec or sink."""
