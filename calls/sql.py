"""The statements a session worker runs on every call event, as SQL built once and reused.

Building a statement with Django's query compiler costs a few tenths of a millisecond of CPU, five
to ten times what running it costs; a worker runs several for each event of thousands of agents. So
the hot writes (a history row's changed columns, the live call's upsert and delete, the agent state,
the lease fence) and the history row's read and insert build their SQL once per table, columns and
database, and only adapt the values each time, through the model fields as Django does (JSON, dates,
foreign keys), both ways. The rest of the code uses the ORM; these statements mean exactly what the
ORM calls they replace mean.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return field


def _column(model: type[Model], name: str) -> str:
    return str(_field(model, name).column)


def _params(model: type[Model], values: dict[str, Any]) -> list[Any]:
    return [_field(model, name).get_db_prep_save(value, connection) for name, value in values.items()]


def _quote(name: str) -> str:
    return str(connection.ops.quote_name(name))


def _where(model: type[Model], names: Iterable[str]) -> str:
    return " AND ".join(f"{_quote(_column(model, name))} = %s" for name in names)


@functools.cache
def _update_sql(model: type[Model], names: tuple[str, ...], keys: tuple[str, ...], vendor: str) -> str:
    assignments = ", ".join(f"{_quote(_column(model, name))} = %s" for name in names)
    table = _quote(model._meta.db_table)
    return f"UPDATE {table} SET {assignments} WHERE {_where(model, keys)}"  # noqa: S608 (quoted identifiers of the model; values are parameters)


def update(model: type[Model], values: dict[str, Any], **where: Any) -> int:
    """``model.objects.filter(**where).update(**values)`` for plain equality filters; the rows changed."""
    sql = _update_sql(model, tuple(values), tuple(where), connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(model, values) + _params(model, where))
        return int(cursor.rowcount)


@functools.cache
def _delete_sql(model: type[Model], keys: tuple[str, ...], vendor: str) -> str:
    return f"DELETE FROM {_quote(model._meta.db_table)} WHERE {_where(model, keys)}"  # noqa: S608 (quoted identifiers of the model; values are parameters)


def delete(model: type[Model], **where: Any) -> int:
    """``model.objects.filter(**where).delete()`` for a model nothing cascades from; the rows deleted."""
    with connection.cursor() as cursor:
        cursor.execute(_delete_sql(model, tuple(where), connection.vendor), _params(model, where))
        return int(cursor.rowcount)


def _insert_into(model: type[Model], names: tuple[str, ...]) -> str:
    columns = ", ".join(_quote(_column(model, name)) for name in names)
    placeholders = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {_quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608 (quoted identifiers of the model; values are parameters)


@functools.cache
def _upsert_sql(
    model: type[Model], names: tuple[str, ...], unique: tuple[str, ...], updated: tuple[str, ...], vendor: str
) -> str:
    conflict = ", ".join(_quote(_column(model, name)) for name in unique)
    assignments = ", ".join(
        f"{_quote(_column(model, name))} = EXCLUDED.{_quote(_column(model, name))}" for name in updated
    )
    return f"{_insert_into(model, names)} ON CONFLICT ({conflict}) DO UPDATE SET {assignments}"


def upsert(
    model: type[Model], values: dict[str, Any], *, unique: tuple[str, ...], updated: tuple[str, ...]
) -> None:
    """One row inserted, or, where one with the same ``unique`` columns exists, its ``updated``
    columns set: ``bulk_create([row], update_conflicts=True, ...)`` for one row."""
    sql = _upsert_sql(model, tuple(values), unique, updated, connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(model, values))


@functools.cache
def _locked_sql(model: type[Model], keys: tuple[str, ...], vendor: str) -> str:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return f"SELECT 1 FROM {_quote(model._meta.db_table)} WHERE {_where(model, keys)}{lock}"  # noqa: S608 (quoted identifiers of the model; values are parameters)


def lock(model: type[Model], **where: Any) -> bool:
    """Inside a transaction: whether a row matches, locked until the transaction ends where the
    database locks rows (``select_for_update().filter(**where).exists()``, without the joins a
    default ordering would add)."""
    with connection.cursor() as cursor:
        cursor.execute(_locked_sql(model, tuple(where), connection.vendor), _params(model, where))
        return cursor.fetchone() is not None


@functools.cache
def _select_sql(model: type[Model], keys: tuple[str, ...], vendor: str) -> str:
    columns = ", ".join(_quote(_column(model, field.name)) for field in model._meta.concrete_fields)
    return f"SELECT {columns} FROM {_quote(model._meta.db_table)} WHERE {_where(model, keys)}"  # noqa: S608 (quoted identifiers of the model; values are parameters)


def _read(field: Field[Any, Any], value: Any) -> Any:
    """A column's value as the ORM gives it: through the database's and the field's converters."""
    column = field.cached_col
    for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
        value = convert(value, column, connection)
    return value


def get(model: type[M], **where: Any) -> M | None:
    """``model.objects.filter(**where).order_by().first()`` for plain equality filters on a unique
    key: the row as the ORM reads it (``Model.from_db``), or ``None``."""
    with connection.cursor() as cursor:
        cursor.execute(_select_sql(model, tuple(where), connection.vendor), _params(model, where))
        row = cursor.fetchone()
    if row is None:
        return None
    fields = model._meta.concrete_fields
    values = [_read(field, value) for field, value in zip(fields, row, strict=True)]
    return model.from_db(connection.alias, [field.attname for field in fields], values)


@functools.cache
def _insert_sql(model: type[Model], names: tuple[str, ...], vendor: str) -> str:
    insert = _insert_into(model, names)
    if connection.features.can_return_columns_from_insert:
        insert += f" RETURNING {_quote(_column(model, model._meta.pk.name))}"
    return insert


def insert(instance: Model) -> None:
    """``instance.save()`` for a new row with a database-made primary key, of a model that nothing
    listens to (no signal is sent): inserted, and its primary key set."""
    model = type(instance)
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    values = {field.name: field.pre_save(instance, True) for field in fields}
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, tuple(values), connection.vendor), _params(model, values))
        row = cursor.fetchone() if connection.features.can_return_columns_from_insert else None
        instance.pk = row[0] if row else cursor.lastrowid
    instance._state.adding = False
    instance._state.db = connection.alias
