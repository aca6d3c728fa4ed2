"""Bulk writes for the few hot paths that write thousands of rows a second (the renewal
job): PostgreSQL's COPY through psycopg, which adapts each value in C, instead of
bulk_create, whose per-field preparation costs more than the insert itself
(docs/decisions.md, "COPY for bulk renewals").

The rows go in the caller's transaction and fire the tables' constraints and triggers
(deferred foreign keys are checked at commit) like any insert; no model code runs, so the
caller passes every column a default would have filled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models
from psycopg.types.json import Jsonb


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """COPY `rows` (tuples in `columns` order) into `table`."""
    names = ", ".join(f'"{name}"' for name in columns)
    sql = f'COPY "{table}" ({names}) FROM STDIN'
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def next_ids(table: str, count: int, column: str = "id") -> list[int]:
    """`count` values of the table's id sequence, for rows written by copy_rows that
    the caller must refer to (COPY returns nothing)."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def copy_models(objs: Sequence[models.Model]) -> None:
    """bulk_create for one model's new instances through COPY: every concrete field as
    the instance holds it (auto_now_add filled as save would), an auto id left to its
    sequence unless the instances have theirs (from next_ids). Values go to psycopg as
    they are (no get_db_prep_save): fine for the numbers, strings, UUIDs, aware datetimes
    and JSON these hot paths write."""
    if not objs:
        return
    meta = type(objs[0])._meta
    auto_id = objs[0].pk is None  # else the ids were given (next_ids)
    fields = [
        f
        for f in meta.concrete_fields
        if not (auto_id and f.primary_key and isinstance(f, models.AutoField | models.BigAutoField))
    ]
    stamped = [
        f for f in fields if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
    ]
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    for obj in objs:
        for f in stamped:
            f.pre_save(obj, add=True)
    names = [f.attname for f in fields]
    copy_rows(
        meta.db_table,
        [f.column for f in fields],
        (
            tuple(Jsonb(getattr(obj, n)) if n in json_fields else getattr(obj, n) for n in names)
            for obj in objs
        ),
    )
