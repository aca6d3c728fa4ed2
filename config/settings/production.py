from .base import *  # noqa: F403

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
