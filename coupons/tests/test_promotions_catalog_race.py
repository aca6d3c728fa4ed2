"""The compiled catalog is shared by the threads of one process; a change (`changed()`)
drops it while other threads are reading. Seen in CI: an admin save racing applies made
`catalog()` return None to a thread that waited on the build lock (AttributeError, a 500)."""

import threading

import pytest

from coupons import promotions
from coupons.tests.factories import CouponFactory

READERS = 6
ROUNDS = 150


@pytest.mark.django_db(transaction=True)
def test_catalog_never_returns_none_while_changes_drop_it():
    # given an auto promotion, so building the catalog takes a few queries
    CouponFactory(code="AUTO", auto_apply=True)
    promotions.reset()
    start = threading.Barrier(READERS + 1)
    seen: list[object] = []
    errors: list[BaseException] = []

    def read():
        from django.db import connection

        try:
            start.wait()
            for _ in range(ROUNDS):
                seen.append(promotions.catalog())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    # when readers build and read the catalog while another thread keeps dropping it
    threads = [threading.Thread(target=read) for _ in range(READERS)]
    for t in threads:
        t.start()
    start.wait()
    while any(t.is_alive() for t in threads):
        promotions._bump()
    for t in threads:
        t.join()
    # then every read got a catalog
    assert not errors, errors[0]
    assert len(seen) == READERS * ROUNDS
    assert all(c is not None for c in seen), sum(c is None for c in seen)
