"""Turn a lost database connection into `503` + `Retry-After` instead of a stack trace."""

import logging

from django.db import InterfaceError, OperationalError

from core.errors import database_unavailable

try:  # the pool raises its own timeout when no connection can be had
    from psycopg_pool import PoolTimeout
except ImportError:  # pragma: no cover
    PoolTimeout = OperationalError

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            logger.warning("database unavailable: %s", exc)
            return database_unavailable()

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError, PoolTimeout)):
            logger.warning("database unavailable: %s", exception)
            return database_unavailable()
        return None
