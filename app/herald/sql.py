"""SQL for the statements every request or socket runs, built once per process from the models.

A single-event POST, or a socket connecting, runs the same few statements thousands of times a
minute, and Django compiling each queryset afresh was most of a POST's CPU (docs/benchmarks.md,
3 December). These helpers write the text once and run it through `Model.objects.raw()` or a
cursor, with values prepared by each field (`get_db_prep_save`/`get_db_prep_value`), so conversions
stay Django's.
"""

from __future__ import annotations

import functools

from django.db import DEFAULT_DB_ALIAS, connection, connections


@functools.lru_cache(maxsize=256)
def select_by(model, field: str, *, later_than: str | None = None, lock: bool = False, among: int | None = None) -> str:
    """Every concrete column of `model`'s rows where `field` = %s — or, with `among`, is one of that
    many %s — (and, with `later_than`, that field > one more %s); row-locked until the transaction
    ends when `lock` (on databases without FOR UPDATE, SQLite, writers are serialised anyway)."""
    meta, quote = model._meta, connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in meta.concrete_fields)
    column = quote(meta.get_field(field).column)
    where = f"{column} = %s" if among is None else f"{column} IN ({', '.join(['%s'] * among)})"
    if later_than:
        where += f" AND {quote(meta.get_field(later_than).column)} > %s"
    suffix = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    return f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {where}{suffix}"


@functools.cache
def update_by_pk(model, fields: tuple[str, ...]) -> str:
    """Set these fields (in this order, then the pk) of one row."""
    meta, quote = model._meta, connection.ops.quote_name
    columns = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in fields)
    return f"UPDATE {quote(meta.db_table)} SET {columns} WHERE {quote(meta.pk.column)} = %s"


@functools.lru_cache(maxsize=64)
def insert_into(model, fields: tuple[str, ...], rows: int) -> str:
    """One INSERT of `rows` rows of these fields' columns, every value a %s (row after row)."""
    meta, quote = model._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in fields)
    row = f"({', '.join(['%s'] * len(fields))})"
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)}"


@functools.cache
def copy_into(model, fields: tuple[str, ...]) -> str:
    """PostgreSQL's COPY of these fields' columns, rows written by psycopg's cursor.copy()."""
    meta, quote = model._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in fields)
    return f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"


def first(model, statement: str, params: list):
    """The first row a select_by() statement finds, as a model instance, or None.

    Built as Django builds a queryset's rows (each column through the backend's and the field's
    converters, then `Model.from_db`), but from a plan made once per model and connection: a
    `RawQuerySet` works out its column mapping and converters afresh for every query, which was most
    of the cost of the session and user reads in a socket's connect (docs/benchmarks.md, 7 December).
    """
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return None if row is None else _instances(model, [row])[0]


def rows(model, statement: str, params: list) -> list:
    """Every row a select_by() statement finds, as model instances built as first() builds one."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        found = cursor.fetchall()
    return _instances(model, found)


def _instances(model, found: list) -> list:
    database = connections[DEFAULT_DB_ALIAS]  # this thread's, as `connection` is
    attnames, converters = _row_plan(model, database)
    instances = []
    for row in found:
        if converters:
            row = list(row)
            for index, functions, column in converters:
                value = row[index]
                for convert in functions:
                    value = convert(value, column, database)
                row[index] = value
        instances.append(model.from_db(database.alias, attnames, row))
    return instances


@functools.lru_cache(maxsize=64)
def _row_plan(model, database) -> tuple[list[str], list[tuple]]:
    """The attribute names of select_by()'s columns, and the converters of those that have any — per
    thread's connection wrapper, since a backend's converters are methods of that connection's ops."""
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        functions = database.ops.get_db_converters(column) + column.get_db_converters(database)
        if functions:
            converters.append((index, functions, column))
    return [f.attname for f in fields], converters


def update(instance, fields: tuple[str, ...]) -> None:
    """Write only these fields of a stored row, each value prepared as save(update_fields=…) would;
    no signals are sent."""
    meta = instance._meta
    values = [meta.get_field(name).get_db_prep_save(getattr(instance, name), connection) for name in fields]
    with connection.cursor() as cursor:
        cursor.execute(update_by_pk(type(instance), fields), [*values, instance.pk])
