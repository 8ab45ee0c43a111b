"""Column bundles: dataclasses whose fields are equal-length numpy arrays, one row per position.

Visits, orders, returns and customers travel between the skeleton pass and the chunk jobs as
such bundles; selecting rows and joining parts is the same operation for all of them.
"""

from __future__ import annotations

from typing import Self

import numpy as np


class Columns:
    """Mixin for a dataclass of equal-length arrays."""

    __dataclass_fields__: dict

    def take(self, idx: np.ndarray | slice) -> Self:
        """The rows at `idx` (positions, or a slice, which gives views)."""
        return type(self)(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        """The parts' rows one after another."""
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))
