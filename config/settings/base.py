"""Settings shared by every environment. Values come from the environment (config/env.py);
the defaults work on a development machine with local PostgreSQL and Redis."""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env

SECRET_KEY = env("SECRET_KEY", default="dev-insecure-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_TZ = True
USE_I18N = False
LANGUAGE_CODE = "en-us"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "simple_history",
    "chartjs",
    "axes",
    "core",
    "coupons",
    "coupons.codebatches",
    "coupons.campaigns",
    "coupons.abuse",
    "coupons.analytics",
    "billing",
    "billing.webhooks",
    "entitlements",
    "referrals",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the 429 page.
    "axes.middleware.AxesMiddleware",
]

# django-axes checks (and counts) every login before Django's own backend runs.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# A small psycopg pool per process: hot-row throughput falls as connections rise
# (docs/decisions.md, "Connection pool size").
DATABASES: dict[str, dict[str, Any]] = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/growth"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = 0
# With the pool this makes psycopg check a connection before handing it out, so after a
# PostgreSQL restart dead pooled connections are replaced instead of failing a request
# each. One round trip per checkout; requests that touch no table (cached validate) skip it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_HEALTH_CHECKS", default=True)
DATABASES["default"].setdefault("OPTIONS", {})
if env.bool("DB_POOL", default=True):
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=1),
        "max_size": env.int("DB_POOL_MAX", default=4),
        "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
    }
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", 3))
# A backend whose client died (a worker SIGKILLed, a gunicorn worker past its timeout)
# otherwise runs its statement to the end, holding its locks (a batch's advisory lock, a
# coupon's row lock) while the retry waits: PostgreSQL checks the socket only when it
# next talks to the client. client_connection_check_interval makes it check every N ms
# during a statement and stop; TCP keepalives (both ends) find a client or server whose
# host vanished without closing the socket. Statement timeouts differ: off by default
# here (migrations build indexes on big tables: unset means the server's or role's own
# value), set for Celery workers, which get DB_WORKER_SESSION_OPTIONS instead
# (config/celery.py, on worker_init). docs/decisions.md, "Sessions of dead clients".
_keepalive = {
    "idle": env.int("DB_TCP_KEEPALIVES_IDLE", default=30),
    "interval": env.int("DB_TCP_KEEPALIVES_INTERVAL", default=10),
    "count": env.int("DB_TCP_KEEPALIVES_COUNT", default=3),
}
DB_SESSION_SETTINGS: dict[str, int | str] = {
    "client_connection_check_interval": env.int("DB_CLIENT_CONNECTION_CHECK_MS", default=2000),
    # PostgreSQL plans its foreign-key checks once per session and may keep a generic plan
    # made while a table was small: a long-lived session then checks every invoice line
    # with a sequential scan of billing_invoice (O(n) per check, 161 s instead of 75 s for
    # 100,000 renewals). Custom plans cost a few microseconds of planning per check.
    # docs/decisions.md, "Custom plans for every session".
    "plan_cache_mode": env("DB_PLAN_CACHE_MODE", default="force_custom_plan"),
    **{f"tcp_keepalives_{k}": v for k, v in _keepalive.items()},
}
if env("DB_STATEMENT_TIMEOUT_MS", default=""):
    DB_SESSION_SETTINGS["statement_timeout"] = env.int("DB_STATEMENT_TIMEOUT_MS")
DB_WORKER_SESSION_SETTINGS = {
    **DB_SESSION_SETTINGS,
    # A 50,000-code chunk is one INSERT of 1-4.2 s on a loaded 2-core box: ~28x headroom,
    # and below CELERY_TASK_SOFT_TIME_LIMIT, so a stuck statement fails the task cleanly.
    "statement_timeout": env.int("DB_WORKER_STATEMENT_TIMEOUT_MS", default=120_000),
    # A task's transaction whose client says nothing for a minute (a frozen process, a
    # lost host) is ended, and its row locks with it.
    "idle_in_transaction_session_timeout": env.int(
        "DB_WORKER_IDLE_IN_TRANSACTION_TIMEOUT_MS", default=60_000
    ),
}
_url_options = DATABASES["default"]["OPTIONS"].get("options", "")


def _session_options(gucs: dict[str, int | str]) -> str:
    # libpq `options`; any from DATABASE_URL's query string come last, so they win.
    own = " ".join(f"-c {name}={value}" for name, value in gucs.items())
    return f"{own} {_url_options}".strip()


DB_SESSION_OPTIONS = _session_options(DB_SESSION_SETTINGS)
DB_WORKER_SESSION_OPTIONS = _session_options(DB_WORKER_SESSION_SETTINGS)
DATABASES["default"]["OPTIONS"]["options"] = DB_SESSION_OPTIONS
# The client side's keepalives (libpq): a worker waiting on a result from a server that
# vanished gives up instead of waiting for the kernel's two hours.
for _name, _value in {
    "keepalives": 1,
    **{f"keepalives_{k}": v for k, v in _keepalive.items()},
}.items():
    DATABASES["default"]["OPTIONS"].setdefault(_name, _value)  # the URL's own win
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (Redis) ----------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="ge"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
            # Redis is a cache: an outage degrades to PostgreSQL reads, never to errors.
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/1")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task whose worker died without acking is redelivered after the visibility timeout; it
# must exceed the hard time limit, or long tasks would run twice (docs/operations.md).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900),
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
}

# --- DRF --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.auth.ApiKeyAuthentication",
        "core.auth.CustomerJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.auth.HasStorefrontScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsing.DecimalJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Growth-commerce engine API",
    "DESCRIPTION": "Coupons, promotions and flash-sale claims. See README.md and API.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name across apps ("type"), named apart.
    "ENUM_NAME_OVERRIDES": {
        "TypeEnum": "coupons.engine.types.DISCOUNT_TYPES",
        "EntitlementFeatureTypeEnum": "entitlements.models.FeatureType",
    },
}

# --- Auth for end customers (API.md) ----------------------------------------------------
JWT_SIGNING_KEY = env("JWT_SIGNING_KEY", default="")
JWT_PUBLIC_KEY = env("JWT_PUBLIC_KEY", default="")
JWT_ALGORITHM = env("JWT_ALGORITHM", default="HS256")
JWT_AUDIENCE = env("JWT_AUDIENCE", default="")
JWT_ISSUER = env("JWT_ISSUER", default="")
# Verified API keys are remembered in-process this long, so the checkout path does not
# hash and look up the key on every request (revocation takes effect within this window).
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=30)

# --- Product settings -------------------------------------------------------------------
COUPON_RESERVATION_TTL = env.int("COUPON_RESERVATION_TTL", default=30 * 60)  # seconds
# Bulk code generation: database sessions inserting one batch's chunks side by side, and
# how long a generating batch may show no progress before the beat job re-queues it.
CODEBATCH_PARALLEL = env.int("CODEBATCH_PARALLEL", default=2)
CODEBATCH_STALL_SECONDS = env.int("CODEBATCH_STALL_SECONDS", default=120)
COUPON_CACHE_SECONDS = env.int("COUPON_CACHE_SECONDS", default=300)
COUPON_LOCAL_CACHE_SECONDS = env.float("COUPON_LOCAL_CACHE_SECONDS", default=1.0)
STACKING_POLICY = env("STACKING_POLICY", default="by_group")  # none | by_group | full
if STACKING_POLICY not in ("none", "by_group", "full"):
    raise ImproperlyConfigured("STACKING_POLICY must be none, by_group or full.")
IDEMPOTENCY_TTL_HOURS = env.int("IDEMPOTENCY_TTL_HOURS", default=24)
IDEMPOTENCY_WAIT_SECONDS = env.float("IDEMPOTENCY_WAIT_SECONDS", default=5.0)
# An in-flight record older than this belongs to a request that died (worker killed); a
# retry then takes it over. Keep it above the gunicorn timeout (30 s).
IDEMPOTENCY_STALE_SECONDS = env.int("IDEMPOTENCY_STALE_SECONDS", default=60)
MAX_CART_ITEMS = env.int("MAX_CART_ITEMS", default=500)

# --- Abuse protection (abuse/, docs/decisions.md) ----------------------------------------
# Attempts with unknown codes (coupon_not_found) allowed per window before 429; rates are
# django-ratelimit's "N/period" ("10/m", "5/h", "20/10m"). Redis down -> not limited.
ABUSE_RATE_LIMITS_ENABLED = env.bool("ABUSE_RATE_LIMITS_ENABLED", default=True)
ABUSE_NOT_FOUND_RATE_CUSTOMER = env("ABUSE_NOT_FOUND_RATE_CUSTOMER", default="10/m")
ABUSE_NOT_FOUND_RATE_IP = env("ABUSE_NOT_FOUND_RATE_IP", default="10/m")
ABUSE_NOT_FOUND_RATE_SESSION = env("ABUSE_NOT_FOUND_RATE_SESSION", default="5/h")
RATELIMIT_FAIL_OPEN = True
RATELIMIT_CACHE_PREFIX = "abuse:rl:"
# A public code redeemed by more than this many unique customers in an hour is disabled
# (per-coupon override: Coupon.leak_threshold).
ABUSE_LEAK_THRESHOLD = env.int("ABUSE_LEAK_THRESHOLD", default=1000)
# Return rate above which a coupon is flagged, once it has this many confirmed orders.
ABUSE_RETURN_RATE_THRESHOLD = env.float("ABUSE_RETURN_RATE_THRESHOLD", default=0.30)
ABUSE_RETURN_MIN_ORDERS = env.int("ABUSE_RETURN_MIN_ORDERS", default=10)
# Key of the HMAC that hashes shopper identities (device, IP, email, card); rotating it
# makes earlier redemptions unmatchable. Defaults to a key derived from SECRET_KEY.
ABUSE_IDENTITY_KEY = env("ABUSE_IDENTITY_KEY", default="")
MARKETING_ALERT_EMAIL = env.list("MARKETING_ALERT_EMAIL", default=["marketing@localhost"])
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="growth-engine@localhost")
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# --- Admin login throttling (django-axes; docs/operations.md) ---------------------------
# AXES_FAILURE_LIMIT wrong passwords for one username from one client IP lock that pair
# out for AXES_COOLOFF_MINUTES (each further try restarts the wait); the same user from
# another IP, and other users from that IP, can still log in. A successful login clears
# the pair's failures. Attempts live in PostgreSQL and are listed (and deleted, which
# unlocks) in the admin under "Axes".
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_MINUTES = env.int("AXES_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_COOLOFF_MESSAGE = (
    f"Too many failed logins: this account is locked for {AXES_COOLOFF_MINUTES} minutes "
    "from your address. Wait that long without trying again (each attempt restarts the "
    "wait), or ask an administrator to unlock it."
)
# The client IP: REMOTE_ADDR unless set. Behind one reverse proxy that sets (or appends
# to) X-Forwarded-For, use AXES_IPWARE_META_PRECEDENCE_ORDER=HTTP_X_FORWARDED_FOR,REMOTE_ADDR
# with AXES_IPWARE_PROXY_COUNT=0 (the count of proxies listed in the header besides the
# client); a header with more entries (a client's own forged value) is then ignored and
# REMOTE_ADDR (the proxy) is used. Never trust the header without a proxy that sets it.
AXES_IPWARE_META_PRECEDENCE_ORDER = env.list(
    "AXES_IPWARE_META_PRECEDENCE_ORDER", default=["REMOTE_ADDR"]
)
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=None)

# --- Analytics (analytics/) -------------------------------------------------------------
# Checkout events are buffered in-process and written in batches by a background thread;
# a crash loses at most one flush interval of events (docs/decisions.md).
ANALYTICS_ENABLED = env.bool("ANALYTICS_ENABLED", default=True)
ANALYTICS_FLUSH_SECONDS = env.float("ANALYTICS_FLUSH_SECONDS", default=1.0)
ANALYTICS_BUFFER_MAX = env.int("ANALYTICS_BUFFER_MAX", default=50_000)

# --- Entitlements (entitlements/, docs/entitlements.md) --------------------------------------
# This process's LRU of computed answers (entries; 0 turns it off), and how long Redis
# keeps an answer and a version number. A version publish lost to a Redis outage is
# repaired when its key expires (ENTITLEMENTS_VERSION_TTL), and denials are always
# confirmed from PostgreSQL.
ENTITLEMENTS_LOCAL_CACHE_SIZE = env.int("ENTITLEMENTS_LOCAL_CACHE_SIZE", default=10_000)
ENTITLEMENTS_CACHE_SECONDS = env.int("ENTITLEMENTS_CACHE_SECONDS", default=300)
ENTITLEMENTS_VERSION_TTL = env.int("ENTITLEMENTS_VERSION_TTL", default=60)

# --- Referrals (referrals/, docs/referrals.md) ------------------------------------------------
# The program's first settings (the admin's Referral program row holds them after): the
# hold after the invitee's first paid invoice, and the referrer's credit (in the
# invoice's currency).
REFERRAL_HOLD_DAYS = env.int("REFERRAL_HOLD_DAYS", default=14)
REFERRAL_REFERRER_CREDIT = env("REFERRAL_REFERRER_CREDIT", default="10.00")

# --- Billing (billing/, docs/billing.md) ------------------------------------------------
# Dunning: retries on these days counted from the first failure (five attempts in all
# with the default), then the invoice is uncollectible and the subscription cancelled.
BILLING_DUNNING_RETRY_DAYS = [
    int(x) for x in env.list("BILLING_DUNNING_RETRY_DAYS", default=["1", "3", "5", "7"])
]
# A past_due customer keeps the plan's features this long after the first failure.
BILLING_GRACE_DAYS = env.int("BILLING_GRACE_DAYS", default=3)
BILLING_TEST_CLOCKS_ENABLED = env.bool("BILLING_TEST_CLOCKS_ENABLED", default=True)
# The payment gateway: "test" is the built-in deterministic one (billing/payments).
BILLING_GATEWAY = env("BILLING_GATEWAY", default="test")
BILLING_TEST_GATEWAY_LATENCY_MS = env.int("BILLING_TEST_GATEWAY_LATENCY_MS", default=0)
BILLING_TEST_GATEWAY_FAILURE = env("BILLING_TEST_GATEWAY_FAILURE", default="none")
BILLING_TEST_GATEWAY_HANG_SECONDS = env.float("BILLING_TEST_GATEWAY_HANG_SECONDS", default=30.0)
# A payment attempt with no answer for this long is settled by asking the gateway.
BILLING_ATTEMPT_STALE_SECONDS = env.int("BILLING_ATTEMPT_STALE_SECONDS", default=120)
# Where the dunning email sends the customer to update the card ({customer_id} filled in).
BILLING_UPDATE_CARD_URL = env(
    "BILLING_UPDATE_CARD_URL", default="http://127.0.0.1:8000/billing/{customer_id}/payment-method"
)
BILLING_INVOICE_PREFIX = env("BILLING_INVOICE_PREFIX", default="INV")
BILLING_RENEWAL_BATCH = env.int("BILLING_RENEWAL_BATCH", default=200)
# How many workers the beat job spreads a due set over (itself plus N - 1 queued runners).
BILLING_RENEWAL_PARALLELISM = env.int("BILLING_RENEWAL_PARALLELISM", default=2)
# A runner of the due work stops after this long and queues its continuation (below the
# task soft time limit, CELERY_TASK_SOFT_TIME_LIMIT).
BILLING_RUN_DUE_SECONDS = env.int("BILLING_RUN_DUE_SECONDS", default=120)
# A test clock advance answers 200 "ready" when done within this, else 202 "advancing".
BILLING_CLOCK_SYNC_SECONDS = env.float("BILLING_CLOCK_SYNC_SECONDS", default=10.0)
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
