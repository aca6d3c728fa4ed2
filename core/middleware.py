"""Turn a lost database connection in a non-DRF view (admin, health) into `503` +
`Retry-After` instead of a stack trace."""

import logging

from django.db import InterfaceError, OperationalError

from core.api.errors import database_unavailable

try:  # the pool raises its own timeout when no connection can be had
    from psycopg_pool import PoolTimeout
except ImportError:  # pragma: no cover
    PoolTimeout = OperationalError  # type: ignore[misc, assignment]

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    # Django turns a view's exception into a response before it reaches __call__, so the
    # view's exceptions are caught here; DRF views have core.api.errors' handler as well.
    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError, PoolTimeout)):
            logger.warning("database unavailable: %s", exception)
            return database_unavailable()
        return None
