"""Layer `config`: the run's settings: schema, validation, and the one loader (imports only `core`)."""
