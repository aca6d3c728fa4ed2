"""HTTP plumbing every app's API uses: the error body and the one exception handler
(errors), request parsing (parsing), OpenAPI pieces such as the Idempotency-Key header and
the error schema (schema). Apps keep only their own serializers, views and urls."""
