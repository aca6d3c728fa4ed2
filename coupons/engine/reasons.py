"""Stable reason codes (API.md) and their human messages."""

COUPON_NOT_FOUND = "coupon_not_found"
COUPON_INACTIVE = "coupon_inactive"
COUPON_NOT_STARTED = "coupon_not_started"
COUPON_EXPIRED = "coupon_expired"
USAGE_LIMIT_REACHED = "usage_limit_reached"
CUSTOMER_LIMIT_REACHED = "customer_limit_reached"
CUSTOMER_REQUIRED = "customer_required"
CODE_BOUND_TO_OTHER_CUSTOMER = "code_bound_to_other_customer"
SEGMENT_NOT_ELIGIBLE = "segment_not_eligible"
FIRST_PURCHASE_ONLY = "first_purchase_only"
MIN_CART_VALUE_NOT_MET = "min_cart_value_not_met"
NO_ELIGIBLE_ITEMS = "no_eligible_items"
CURRENCY_MISMATCH = "currency_mismatch"
NOT_STACKABLE = "not_stackable"
STACK_GROUP_CONFLICT = "stack_group_conflict"
CAMPAIGN_NOT_LIVE = "campaign_not_live"
SOLD_OUT = "sold_out"
ALREADY_REDEEMED = "already_redeemed"
# Beyond API.md's list (abuse protection, issue 6): a first-purchase or once-per-customer
# coupon set to block, already used from the same device/IP/email/card by another account.
MULTI_ACCOUNT_SUSPECTED = "multi_account_suspected"

MESSAGES = {
    COUPON_NOT_FOUND: "Coupon not found",
    COUPON_INACTIVE: "Coupon is not active",
    COUPON_NOT_STARTED: "Coupon is not valid yet",
    COUPON_EXPIRED: "Coupon expired",
    USAGE_LIMIT_REACHED: "Coupon usage limit reached",
    CUSTOMER_LIMIT_REACHED: "You have already used this coupon the maximum number of times",
    CUSTOMER_REQUIRED: "This coupon needs a signed-in customer",
    CODE_BOUND_TO_OTHER_CUSTOMER: "This code belongs to another customer",
    SEGMENT_NOT_ELIGIBLE: "This coupon is not available for your account",
    FIRST_PURCHASE_ONLY: "This coupon is for a first purchase only",
    MIN_CART_VALUE_NOT_MET: "Cart total is below the coupon's minimum",
    NO_ELIGIBLE_ITEMS: "No item in the cart is eligible for this coupon",
    CURRENCY_MISMATCH: "This coupon is not valid in the cart's currency",
    NOT_STACKABLE: "This coupon cannot be combined with other coupons",
    STACK_GROUP_CONFLICT: "Only one coupon of this kind can be used per order",
    CAMPAIGN_NOT_LIVE: "The campaign is not live",
    SOLD_OUT: "Sold out",
    ALREADY_REDEEMED: "This code has already been redeemed",
    MULTI_ACCOUNT_SUSPECTED: "This coupon was already used by another account from the same "
    "device, network, email or payment method",
}
