from django.core.exceptions import ImproperlyConfigured

from .base import *

DEBUG = False
JWT_SIGNING_KEY = "test-jwt-signing-key-of-enough-length"
JWT_ALGORITHM = "HS256"
# Tests use their own Redis database so flushing it never touches a running demo. Under
# `pytest -n N` (make test) each xdist worker flushes its own: worker gwK uses the base
# database + 3K (2, 5, 8, ...; 0-1 are the demo's, 3-4 the benchmarks').
XDIST_WORKER = int(env("PYTEST_XDIST_WORKER", default="gw0").removeprefix("gw") or 0)
_test_redis, _, _test_redis_db = env(
    "TEST_REDIS_URL", default="redis://127.0.0.1:6379/2"
).rpartition("/")
_test_redis_db_n = int(_test_redis_db) + 3 * XDIST_WORKER
if _test_redis_db_n > 13:  # 14 is the worker tests' broker; Redis stops at 15
    raise ImproperlyConfigured(f"No Redis database {_test_redis_db_n}: fewer TEST_WORKERS")
CACHES["default"]["LOCATION"] = f"{_test_redis}/{_test_redis_db_n}"
CACHES["default"]["KEY_PREFIX"] = "ge-test"
CELERY_TASK_ALWAYS_EAGER = True
API_KEY_CACHE_SECONDS = 0
COUPON_LOCAL_CACHE_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Race tests open one connection per thread; the pool is a per-process optimisation that
# would serialise them, so tests use plain connections.
DATABASES["default"]["OPTIONS"].pop("pool", None)
LOGGING["root"]["level"] = "WARNING"
# Parallel test runs (several developers or agents on one machine) use their own names.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DB_NAME", default="test_growth")}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ANALYTICS_FLUSH_SECONDS = 3600  # tests flush explicitly (analytics.events.flush)
