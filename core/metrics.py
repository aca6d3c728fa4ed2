"""Business counters exported at /metrics next to django-prometheus' request metrics.

Under gunicorn, config/gunicorn.py sets PROMETHEUS_MULTIPROC_DIR so the counters of all
workers are summed on every scrape.
"""

from prometheus_client import Counter

coupon_validations = Counter(
    "coupon_validations_total", "Coupon validations by outcome (valid or reason code).",
    ["outcome"])
coupon_applications = Counter(
    "coupon_applications_total", "Coupon apply calls by outcome (applied, replayed, reason).",
    ["outcome"])
redemption_transitions = Counter(
    "coupon_redemption_transitions_total", "Redemptions moved to a state.", ["status"])
