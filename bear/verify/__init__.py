"""Layer `verify`: an independent audit of a lake read back from its sink (imports `core`, `config`, `lake`)."""
