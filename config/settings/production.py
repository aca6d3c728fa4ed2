from .base import *

SECRET_KEY = env("SECRET_KEY")
# DATABASE_URL is required here (no default). Its query options (e.g. ?sslmode=require)
# are merged into base's OPTIONS so the pool and connect timeout stay on.
_db = env.db("DATABASE_URL")
_options = {**DATABASES["default"]["OPTIONS"], **_db.pop("OPTIONS", {})}
DATABASES["default"] = {**DATABASES["default"], **_db, "OPTIONS": _options}
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
# HTTPS only (manage.py check --deploy runs in make test with these defaults). TLS ends at
# the reverse proxy, which must set X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER above).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Probes and the Prometheus scraper call the web node directly over plain http (the
# image's HEALTHCHECK, compose's, a load balancer's), so these paths are never redirected.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
# HSTS is sent on HTTPS responses only. A year, subdomains included, preload-ready; lower
# SECURE_HSTS_SECONDS (e.g. 3600) for the first rollout on a new domain (docs/operations.md).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# Test clocks move billing's time: never in production (API.md: 404 when off).
BILLING_TEST_CLOCKS_ENABLED = env.bool("BILLING_TEST_CLOCKS_ENABLED", default=False)
# No default gateway in production: the operator names it (only "test" ships today).
BILLING_GATEWAY = env("BILLING_GATEWAY")
