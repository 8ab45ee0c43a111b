"""The shop's closed vocabularies (display labels, as the data carries them) and their config keys.

One owner for every label set: the generator draws from these, the config validates its keys
against them, the docs list them. A label's config key is `ident(label)`.
"""

from __future__ import annotations

import re
from typing import Any

CHANNELS = ("Website", "Email", "Social Media", "Phone")
TIERS = ("Platinum", "Gold", "Silver", "Bronze", "None")
SEGMENT_TIERS = (*TIERS, "Guest")
CATEGORIES = ("Books", "Clothing", "Electronics", "Home", "Toys")
ORDER_CHANNELS = ("Web", "Phone", "Social", "Ebay", "NewEgg")
PAYMENT_METHODS = ("Credit Card", "PayPal", "Apple Pay", "Gift Card")
SHIPPING_SPEEDS = ("Standard", "Two-Day", "Overnight")
RETURN_REASONS = ("Damaged", "Defective", "Wrong Item", "Not as Described", "Changed Mind", "Size/Fit")
MESS_LEVELS = ("none", "light_mess", "medium_mess", "heavy_mess")
EARNED_TIERS = ("Bronze", "Silver", "Gold", "Platinum")  # the loyalty ladder spend climbs, lowest first
CLV_BUCKETS = ("Low", "Medium", "High")  # lowest first
CHANGED = ("loyalty_tier", "clv_bucket", "loyalty_tier,clv_bucket")  # customer_changes.changed, by change code


def ident(label: str) -> str:
    """A display label's config key, an identifier a command line can name: `Social Media` -> `social_media`,
    `Size/Fit` -> `size_fit`, `Two-Day` -> `two_day`. The data keeps the labels."""
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def title_label(key_: str) -> str:
    """The label of an identifier of an open vocabulary (return channels, refund methods): its words title-cased."""
    return key_.replace("_", " ").title()


def per_label(mapping: dict[str, Any], labels: tuple[str, ...]) -> list[Any]:
    """mapping[ident(label)] for each label, in the vocabulary's order."""
    return [mapping[ident(lb)] for lb in labels]

def idents(labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(ident(lb) for lb in labels)
