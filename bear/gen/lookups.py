"""The two dimensions every chunk needs: customers and the product catalog.

Both are generated once per run from keyed draws (customer index, product index) and
shipped to workers through the object store. Generation keeps the numeric attributes
that drive behaviour (channel, tier, signup day, prices) as numpy arrays; the Arrow
tables with names and addresses are built only where they are written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bear.core import text
from bear.core.calendar import DAY_S
from bear.core.columns import Columns
from bear.core.money import decimal_array
from bear.core.vocab import CATEGORIES, CHANNELS, CLV_BUCKETS, SEGMENT_TIERS
from bear.gen.model import GUEST_TIER, NO_TIER, Model
from bear.gen.rng import cumulative

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Donald", "Ashley",
    "Steven", "Kimberly", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol",
    "Kevin", "Amanda", "Brian", "Melissa", "George", "Deborah", "Timothy", "Stephanie", "Ronald", "Laura",
    "Jason", "Rebecca", "Ryan", "Sharon", "Jacob", "Cynthia", "Gary", "Kathleen", "Nicholas", "Amy",
    "Eric", "Angela", "Jonathan", "Shirley", "Stephen", "Anna", "Larry", "Brenda", "Justin", "Pamela",
    "Priya", "Wei", "Carlos", "Sofia", "Ahmed", "Fatima", "Hiroshi", "Yuki", "Olga", "Mateo",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Patel", "Chen", "Kim", "Singh", "Khan", "Ivanova", "Tanaka", "Muller", "Rossi", "Silva",
)
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "proton.me", "aol.com")
STREETS = (
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Blvd", "Lake Rd",
    "Hill St", "Park Ave", "Sunset Blvd", "River Rd", "Church St", "Highland Ave", "Mill Rd", "Spring St",
)
CITIES = (
    ("New York", "NY"), ("Los Angeles", "CA"), ("Chicago", "IL"), ("Houston", "TX"), ("Phoenix", "AZ"),
    ("Philadelphia", "PA"), ("San Antonio", "TX"), ("San Diego", "CA"), ("Dallas", "TX"), ("Austin", "TX"),
    ("Seattle", "WA"), ("Denver", "CO"), ("Boston", "MA"), ("Atlanta", "GA"), ("Miami", "FL"),
    ("Portland", "OR"), ("Columbus", "OH"), ("Nashville", "TN"), ("Detroit", "MI"), ("Minneapolis", "MN"),
)
GENDERS = ("Female", "Male", "Non-binary")
STATUSES = ("Active", "Inactive", "Suspended")

PRODUCT_WORDS = {
    "Books": (("Complete", "Illustrated", "Modern", "Essential", "Hidden", "Pocket", "Classic", "Silent"),
              ("Guide", "Novel", "Cookbook", "Atlas", "Memoir", "Anthology", "Handbook", "Thriller")),
    "Clothing": (("Slim", "Classic", "Organic", "Vintage", "Relaxed", "Merino", "Linen", "Denim"),
                 ("T-Shirt", "Jacket", "Sweater", "Jeans", "Dress", "Hoodie", "Scarf", "Sneakers")),
    "Electronics": (("Wireless", "Smart", "Portable", "Ultra", "Pro", "Compact", "Noise-Cancelling", "4K"),
                    ("Headphones", "Speaker", "Charger", "Monitor", "Keyboard", "Camera", "Tablet", "Router")),
    "Home": (("Ceramic", "Bamboo", "Cast-Iron", "Cozy", "Nordic", "Rustic", "Stainless", "Woven"),
             ("Skillet", "Lamp", "Throw", "Vase", "Organizer", "Kettle", "Rug", "Cutting Board")),
    "Toys": (("Wooden", "Magnetic", "Glow", "Deluxe", "Mini", "Musical", "Stacking", "Remote-Control"),
             ("Puzzle", "Robot", "Train Set", "Blocks", "Doll", "Kite", "Dinosaur", "Race Car")),
}
PRICE_RANGE = {"Books": (5, 60), "Clothing": (10, 150), "Electronics": (20, 250), "Home": (10, 200), "Toys": (5, 100)}


@dataclass
class Products:
    """Product index i has product_id i + 1 and category i % 5 (so a category's products are a stride)."""

    category: np.ndarray  # int8 index into CATEGORIES
    price_c: np.ndarray  # int64 cents
    cost_c: np.ndarray
    inventory: np.ndarray
    names: pa.Array
    launch_day: np.ndarray  # the day a campaign launched it (-1: the original catalog)

    def __len__(self) -> int:
        return len(self.category)


@dataclass
class Customers(Columns):
    is_guest: np.ndarray
    channel: np.ndarray  # int8 index into CHANNELS
    tier: np.ndarray  # int8 index into SEGMENT_TIERS (Guest for guests)
    signup_day: np.ndarray  # int32 day number: registration, or a guest's first contact (its first cart's day)
    guest_first_s: np.ndarray  # int64 seconds of a guest's first cart (-1 for registered customers)
    shock: np.ndarray  # cohort multiplier on repeat visits

    def __len__(self) -> int:
        return len(self.is_guest)


def build_products(model: Model) -> Products:
    n = model.products
    rng = model.rng
    i = np.arange(n, dtype=np.int64)
    cat = (i % len(CATEGORIES)).astype(np.int8)
    lo = np.array([PRICE_RANGE[c][0] for c in CATEGORIES], dtype=np.float64)[cat]
    hi = np.array([PRICE_RANGE[c][1] for c in CATEGORIES], dtype=np.float64)[cat]
    price = np.exp(rng.between("product/price", np.log(lo), np.log(hi), i))
    price_c = np.clip(np.round(price * 100), 500, 25_000).astype(np.int64)
    cost_c = np.round(price_c * rng.between("product/cost", 0.40, 0.70, i)).astype(np.int64)
    inventory = rng.integers("product/inventory", 100, 250, i).astype(np.int32)
    adj = rng.integers("product/adj", 0, 7, i)
    noun = rng.integers("product/noun", 0, 7, i)
    names = [
        f"{PRODUCT_WORDS[CATEGORIES[c]][0][a]} {PRODUCT_WORDS[CATEGORIES[c]][1][b]} {k // len(CATEGORIES) + 1:03d}"
        for k, (c, a, b) in enumerate(zip(cat.tolist(), adj.tolist(), noun.tolist(), strict=True))
    ]
    return Products(cat, price_c, cost_c, inventory, pa.array(names, pa.string()), model.launch_day)


def _arrivals(model: Model, kind: np.ndarray, per_window: int, i: np.ndarray) -> np.ndarray:
    """Arrival seconds of the customers of one kind (`kind` true), in the order of their rank at each day's rate
    (drift's new_customers): the `per_window` of them among the first generator.customers indices arrive over the
    signup window, and later ones keep arriving at that rate, so a customer's arrival never depends on the run's
    end."""
    rank = np.cumsum(kind) - 1
    u = model.rng.uniform("customer/arrival", i)
    return model.arrival_seconds((rank + u) / max(per_window, 1))


def build_customers(model: Model) -> Customers:
    """Every customer who has signed up by the run's end (and a few who sign up just after, not written).

    Customer i's attributes come from draws keyed by i, and registered customers and guests each arrive at a
    fixed rate (`_arrivals`), so extending the run appends customers and changes none.
    """
    rng = model.rng
    n = max(model.customers, int(model.arrived_by(model.end_day + 7) * model.customers * 1.1) + 64)
    i = np.arange(n, dtype=np.int64)
    is_guest = rng.uniform("customer/guest", i) < model.guest_share
    registered = ~is_guest
    guests_in_window = int(is_guest[:model.customers].sum())
    reg_s = _arrivals(model, registered, model.customers - guests_in_window, i)
    guest_s = _arrivals(model, is_guest, guests_in_window, i)
    # A guest's signup_date is the day of its first cart, the visit process's own reading of its arrival time
    # (activity time and back); a registered customer's is the day it arrives.
    cart_s = model.seconds_of(model.activity_of(guest_s.astype(np.float64)))
    signup = np.where(registered, reg_s // DAY_S, np.where(cart_s == np.iinfo(np.int64).max, guest_s, cart_s) // DAY_S)
    n = int(np.flatnonzero(signup <= model.end_day)[-1]) + 1 if (signup <= model.end_day).any() else 0
    i, is_guest, registered, signup = i[:n], is_guest[:n], registered[:n], signup[:n].astype(np.int32)
    channel = rng.choice("customer/channel", model.channel_cum, i).astype(np.int8)
    tier = rng.choice("customer/tier", model.tier_cum, i, rows=channel).astype(np.int8)
    tier[rng.uniform("customer/no_tier", i) < model.no_tier_share] = NO_TIER
    tier[is_guest] = GUEST_TIER
    shock = np.ones(n)
    if model.cohort_shocks:
        months = np.where(registered, signup, 0).astype("datetime64[D]").astype("datetime64[M]")
        for cohort, factor in model.cohort_shocks.items():
            shock[registered & (months == np.datetime64(cohort, "M"))] = factor
    return Customers(is_guest, channel, tier, signup, np.where(is_guest, guest_s[:n], -1), shock)


def tier_names(tier: np.ndarray) -> pa.Array:
    """Loyalty tier labels; customers without a tier (and guests) get null."""
    return text.labels(SEGMENT_TIERS, tier, mask=tier >= NO_TIER)


def address(model: Model, stream: str, i: np.ndarray) -> pa.Array:
    rng = model.rng
    city = rng.integers(f"{stream}/city", 0, len(CITIES) - 1, i)
    return text.join(
        text.number(rng.integers(f"{stream}/no", 1, 9999, i), 4), " ",
        text.pick(STREETS, rng.integers(f"{stream}/street", 0, len(STREETS) - 1, i)), ", ",
        text.pick([c for c, _ in CITIES], city), ", ",
        text.pick([s for _, s in CITIES], city), " ",
        text.number(rng.integers(f"{stream}/zip", 1000, 99999, i), 5),
    )


@dataclass
class Lookups:
    """Everything a chunk reads about customers and products, shipped once per run."""

    customers: Customers
    products: Products
    customer_id: pa.Array
    first_name: pa.Array
    last_name: pa.Array
    email: pa.Array
    phone_number: pa.Array
    mailing_address: pa.Array
    billing_address: pa.Array


def build_lookups(model: Model, cust: Customers | None = None, products: Products | None = None) -> Lookups:
    """The lookups, around the behaviour columns if they were built already (the driver builds those)."""
    cust = build_customers(model) if cust is None else cust
    rng = model.rng
    i = np.arange(len(cust), dtype=np.int64)
    customer_id = pc.if_else(pa.array(cust.is_guest), text.padded("GUEST-", i + 1), text.padded("CUST-", i + 1))
    first = text.pick(FIRST_NAMES, rng.integers("customer/first", 0, len(FIRST_NAMES) - 1, i))
    last = text.pick(LAST_NAMES, rng.integers("customer/last", 0, len(LAST_NAMES) - 1, i))
    domain = text.pick(DOMAINS, rng.integers("customer/domain", 0, len(DOMAINS) - 1, i))
    email = pc.utf8_lower(text.join(first, ".", last, text.number(i + 1, 8), "@", domain))
    phone_number = text.join(
        "+1-", text.number(rng.integers("customer/area", 201, 989, i), 3), "-",
        text.number(rng.integers("customer/ex", 200, 999, i), 3), "-",
        text.number(rng.integers("customer/line", 0, 9999, i), 4),
    )
    mailing = address(model, "customer/mail", i)
    same = rng.uniform("customer/same_billing", i) < 0.8
    billing = pc.if_else(pa.array(same), mailing, address(model, "customer/bill", i))
    products = build_products(model) if products is None else products
    return Lookups(cust, products, customer_id, first, last, email, phone_number, mailing, billing)


def customer_columns(model: Model, lk: Lookups, i: np.ndarray) -> dict[str, pa.Array]:
    """The rows of customers `i` (indices) as they signed up: the tier they started with and the lowest CLV bucket.
    What changes later (tier upgrades, CLV buckets) lands as dated rows of customer_changes, so a row written once
    stays true whatever the run's end."""
    rng = model.rng
    cust = lk.customers.take(i)
    guest = cust.is_guest
    enrolled = cust.tier < NO_TIER
    enrol_day = cust.signup_day + rng.integers("customer/enrol", 0, 30, i)
    ta = pa.array(i)
    return {
        "customer_id": lk.customer_id.take(ta),
        "first_name": lk.first_name.take(ta),
        "last_name": lk.last_name.take(ta),
        "email": lk.email.take(ta),
        "phone_number": lk.phone_number.take(ta),
        "signup_date": pa.array(cust.signup_day.astype("datetime64[D]")),
        "gender": text.labels(GENDERS, rng.choice("customer/gender", cumulative([0.49, 0.48, 0.03]), i)),
        "age": pa.array(rng.integers("customer/age", 18, 80, i).astype(np.int16)),
        "is_guest": pa.array(guest),
        "customer_status": text.labels(STATUSES, rng.choice("customer/status", cumulative([0.85, 0.12, 0.03]), i)),
        "signup_channel": text.labels(CHANNELS, cust.channel),
        "loyalty_tier": tier_names(cust.tier),
        "initial_loyalty_tier": tier_names(cust.tier),
        "email_verified": pa.array(~guest & (rng.uniform("customer/verified", i) < 0.85)),
        "marketing_opt_in": pa.array(rng.uniform("customer/opt_in", i) < 0.6),
        "mailing_address": lk.mailing_address.take(ta),
        "billing_address": lk.billing_address.take(ta),
        "loyalty_enrollment_date": pa.array(
            np.where(enrolled, enrol_day, 0).astype("datetime64[D]"), mask=~enrolled
        ),
        "clv_bucket": text.labels(CLV_BUCKETS, np.zeros(len(i), dtype=np.int64)),
    }


def current_tier(initial_tier: np.ndarray, spend_c: np.ndarray, thresholds_c: np.ndarray) -> np.ndarray:
    """A customer's current loyalty tier as an index into SEGMENT_TIERS: the tier earned by net spend `spend_c`,
    never below the tier it signed up with; customers without a tier and guests keep theirs (no tier)."""
    earned = reached(spend_c, thresholds_c)  # Bronze..Platinum -> 0..3
    initial_rank = np.array([3, 2, 1, 0, -1, -1])[initial_tier]  # Platinum..Bronze -> 3..0
    return np.where(initial_rank >= 0, 3 - np.maximum(initial_rank, earned), initial_tier).astype(np.int8)


def reached(spend_c: np.ndarray, thresholds_c: np.ndarray) -> np.ndarray:
    """The highest of the ascending `thresholds_c` (cents) that net spend `spend_c` has reached (0 below them all):
    the earned tier (index into EARNED_TIERS) or CLV bucket (into CLV_BUCKETS)."""
    return np.maximum(np.searchsorted(thresholds_c, spend_c, side="right") - 1, 0)


def change_codes(model: Model, tier: np.ndarray, before_c: np.ndarray, after_c: np.ndarray) -> np.ndarray:
    """What a customer's spend moving from `before_c` to `after_c` changes: -1 nothing, else an index into CHANGED
    (the loyalty tier, the CLV bucket, or both). `tier`: the customers' initial tiers."""
    t = model.tier_thresholds_c
    tier_moved = current_tier(tier, after_c, t) != current_tier(tier, before_c, t)
    clv_moved = reached(after_c, model.clv_thresholds_c) != reached(before_c, model.clv_thresholds_c)
    return tier_moved.astype(np.int64) + 2 * clv_moved - 1


def product_columns(products: Products) -> dict[str, pa.Array]:
    n = len(products)
    return {
        "product_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "product_name": products.names,
        "category": text.pick(CATEGORIES, products.category),
        "unit_price": decimal_array(products.price_c),
        "cost_price": decimal_array(products.cost_c),
        "inventory_quantity": pa.array(products.inventory),
        "launch_date": pa.array(products.launch_day.astype("datetime64[D]"), mask=products.launch_day < 0),
    }
