"""Settings for `make bench` (bench/run.sh): the local settings served by gunicorn against
the dedicated `growth_bench` database and Redis db 3, plus one bare view (bench/urls.py)
that measures what Django itself costs through the same server."""

import warnings

from .local import *

ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
# One log line per request or per warning would cost more than some of the views measured.
LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")

# whitenoise warns once per worker when `collectstatic` has not run; the bench serves no
# static files.
warnings.filterwarnings("ignore", message="No directory at")
