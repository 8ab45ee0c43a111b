"""Layer `core`: facts every layer shares: tables, keys, partitioning, vocabularies, money, dates.

Imports nothing of bear."""
