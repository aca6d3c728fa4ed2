from .base import *

DEBUG = False
JWT_SIGNING_KEY = "test-jwt-signing-key-of-enough-length"
JWT_ALGORITHM = "HS256"
# Tests use their own Redis database so flushing it never touches a running demo.
CACHES["default"]["LOCATION"] = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/2")
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
