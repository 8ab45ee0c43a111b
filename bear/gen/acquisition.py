"""Where an order came from: the columns a schema change adds to orders (`generator.schema_changes`).

Drawn for every order from its own key, so they are the same in any chunking; the writer leaves
them out of the partitions before their `since` day.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.core import text
from bear.gen.model import Model
from bear.gen.rng import cumulative

UTM_SOURCES = ("google", "facebook", "instagram", "newsletter", "tiktok")
UTM_CUM = cumulative([0.40, 0.22, 0.14, 0.10, 0.08, 0.06])  # first: direct traffic (null), then UTM_SOURCES
REFERRAL_SHARE = 0.05


def acquisition(model: Model, key, day: np.ndarray) -> dict[str, pa.Array]:
    """The orders' columns added by schema changes, drawn from each order's key: utm_source (null for direct
    traffic) and referral_code (`REF-` + 6 upper-case hex digits for referred orders, else null). An order placed
    (`day`) before its column's since day has it null, wherever the feed lands it: a late or re-delivered copy in
    a later file holds what the source captured when the order was placed."""
    rng = model.rng
    since = {col: day_ for day_, cols in model.schema_changes.get("orders", ()) for col in cols}
    before = {col: day < since.get(col, 0) for col in ("utm_source", "referral_code")}
    utm = rng.choice("order/utm_source", UTM_CUM, key)
    code = text.hexadecimal("REF-", rng.bits("order/referral_code", key).view(np.int64))
    code = pc.ascii_upper(pc.utf8_slice_codeunits(code, 0, 10))  # the top 24 bits' 6 digits
    referred = pa.array((rng.uniform("order/referral", key) < REFERRAL_SHARE) & ~before["referral_code"])
    return {
        "utm_source": text.labels(UTM_SOURCES, np.maximum(utm - 1, 0), mask=(utm == 0) | before["utm_source"]),
        "referral_code": pc.if_else(referred, code, pa.scalar(None, pa.string())),
    }
