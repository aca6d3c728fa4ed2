"""Reading requests: the JSON parser (numbers as Decimal, never float: the money rule of
API.md) and `parse`, which validates a body with a reused serializer."""

import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class DecimalJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            raw = stream.read() if stream is not None else b""
            if not raw:
                return {}
            return json.loads(
                raw.decode(encoding), parse_float=Decimal, parse_constant=_reject_constant
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None


_parsers: dict[type, object] = {}


def parse(serializer_class, data):
    """Validate `data` with one reused serializer instance per class.

    Instantiating a DRF serializer deep-copies all its fields (about half of the validate
    budget); `run_validation` keeps no per-call state on the instance, so one instance per
    class serves every request and raises the same ValidationError as `is_valid`.
    """
    serializer = _parsers.get(serializer_class)
    if serializer is None:
        serializer = _parsers.setdefault(serializer_class, serializer_class())
    return serializer.run_validation(data)
