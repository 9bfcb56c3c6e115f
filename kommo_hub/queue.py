"""Enqueueing background work so that it can never run against uncommitted rows.

With the database task backend on the same database the task row is written in the caller's
transaction (it commits or rolls back with the data: nothing to lose in between). Any other
backend is enqueued after commit.
"""

from functools import partial
from typing import Any

from django.db import connection, transaction
from django.tasks import Task, task_backends


def _task_row_is_transactional() -> bool:
    backend = task_backends["default"]
    return type(backend).__name__ == "DatabaseBackend" and connection.alias == "default"


def enqueue_on_commit(task: Task[Any, Any], *args: Any) -> None:
    if connection.in_atomic_block and _task_row_is_transactional():
        task.enqueue(*args)
    else:
        transaction.on_commit(partial(task.enqueue, *args))
