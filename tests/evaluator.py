"""A second process for the freshness tests: evaluates carts read as JSON lines on stdin
and prints each result as one JSON line. It keeps its compiled promotions and definition
caches between lines, like a gunicorn worker does between requests.

    {"codes": ["SUMMER25"], "cart": {...API cart...}} -> {"discount": 3750, ...}
"""

import json
import sys

import django

django.setup()

from coupons import services  # noqa: E402
from coupons.api.fields import CartField  # noqa: E402
from coupons.engine.types import Shopper  # noqa: E402


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        cart = CartField().run_validation(request["cart"])
        result = services.promotions_evaluate(
            codes=request.get("codes", []), shopper=Shopper(id="u-1"), cart=cart
        )
        print(
            json.dumps(
                {
                    "discount": result.pricing.discount,
                    "applied": [a.terms.code for a in result.pricing.applied],
                    "policy": result.policy,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
