"""Business counters exported at /metrics next to django-prometheus' request metrics.

Under gunicorn, config/gunicorn.py sets PROMETHEUS_MULTIPROC_DIR so the counters of all
workers are summed on every scrape.
"""

from prometheus_client import Counter

coupon_validations = Counter(
    "coupon_validations_total", "Coupon validations by outcome (valid or reason code).", ["outcome"]
)
coupon_applications = Counter(
    "coupon_applications_total",
    "Coupon apply calls by outcome (applied, replayed, reason).",
    ["outcome"],
)
redemption_transitions = Counter(
    "coupon_redemption_transitions_total", "Redemptions moved to a state.", ["status"]
)
promotion_evaluations = Counter(
    "promotion_evaluations_total",
    "promotions/evaluate calls by outcome (applied: something applied, none, inexact: the "
    "bounded search stopped early).",
    ["outcome"],
)
promotion_catalog_builds = Counter(
    "promotion_catalog_builds_total",
    "Compiled auto-promotion catalogs built (per process, after a change or a Redis outage).",
)
abuse_rate_limited = Counter(
    "abuse_rate_limited_total",
    "Checkout calls answered 429 for guessing, by the limit that tripped (customer, ip, session).",
    ["dimension"],
)
abuse_actions = Counter(
    "abuse_actions_total", "Automatic abuse actions and flags, by kind.", ["kind"]
)
