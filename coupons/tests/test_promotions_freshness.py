"""A change to a promotion is seen by the next evaluation in another process (issue 4):
the other process keeps its compiled promotions and a long local definition cache, and
only the version key in Redis tells it to rebuild."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from coupons import services
from coupons.models import Coupon, PromotionSettings
from coupons.tests.factories import CouponFactory
from tests.faults.conftest import service_env, subprocess_database_url
from tests.support import cart

ROOT = Path(__file__).resolve().parents[2]
CART = cart(("SKU-1", "electronics", "50.00", 3), shipping="7.99")


class Evaluator:
    """tests/evaluator.py in its own interpreter, against this run's database and Redis."""

    def __init__(self):
        cache = settings.CACHES["default"]
        env = service_env(
            DATABASE_URL=subprocess_database_url(),
            REDIS_URL=cache["LOCATION"],
            CACHE_KEY_PREFIX=cache["KEY_PREFIX"],
            COUPON_LOCAL_CACHE_SECONDS="600",
            DB_POOL_MAX="1",
            DB_POOL_MIN="1",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.evaluator"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def evaluate(self, *codes: str) -> dict:
        self.proc.stdin.write(json.dumps({"codes": list(codes), "cart": CART}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the evaluator process died"
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def evaluator(transactional_db):
    process = Evaluator()
    yield process
    process.close()


def test_next_evaluation_in_another_process_sees_each_change(evaluator):
    # given a live auto promotion and a typed code, already compiled/cached over there
    flash = CouponFactory(
        code="FLASH", auto_apply=True, percent_bp=1000, stackable=True, stack_group="flash"
    )
    summer = CouponFactory(code="SUMMER25", percent_bp=2500, stackable=True)
    assert evaluator.evaluate("SUMMER25") == {
        "discount": 1500 + 3375,
        "applied": ["FLASH", "SUMMER25"],
        "policy": settings.STACKING_POLICY,
    }
    # when the promotion's value changes (a committed service call) -> next evaluation
    services.coupon_update(coupon_id=flash.pk, fields={"percent_bp": 2000})
    assert evaluator.evaluate()["discount"] == 3000
    # a typed code's definition, despite the other process's 600 s local cache
    services.coupon_update(coupon_id=summer.pk, fields={"percent_bp": 5000})
    assert evaluator.evaluate("SUMMER25")["discount"] == 7500 + 1500
    # stopping the promotion (the admin's action)
    services.coupons_set_active(coupon_ids=[flash.pk], active=False)
    assert evaluator.evaluate()["applied"] == []
    # a new promotion saved through the ORM (the Django admin's form path)
    CouponFactory(code="NEW5", auto_apply=True, type="fixed", percent_bp=None, amount_minor=500)
    assert evaluator.evaluate()["applied"] == ["NEW5"]
    # the stacking policy singleton
    PromotionSettings(stacking_policy="none").save()
    assert evaluator.evaluate()["policy"] == "none"
    Coupon.objects.filter(code="NEW5").delete()
    assert evaluator.evaluate()["applied"] == []
