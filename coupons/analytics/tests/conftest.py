import pytest

from coupons.analytics import events


@pytest.fixture(autouse=True)
def _empty_event_buffer():
    """Events recorded by one test never reach another (or the database at exit)."""
    events.discard()
    yield
    events.discard()
