"""A PostgREST stand-in on a real Postgres that holds supabase/migrations/: PostgREST itself
is not available here (not in Debian, PyPI or npm; the Supabase CLI needs Docker).

It answers the requests scheduling/supabase.py sends the way PostgREST does: the request's role
is set (so row-level security applies), filters and keyset `or=` become SQL, rows come back as
Postgres' JSON, and errors carry PostgREST's codes and HTTP statuses. Use it in-process as a
respx side effect (`PostgrestStandIn`), or over HTTP (`PostgrestServer`, for hub processes).
"""

import contextlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import psycopg
from psycopg import sql

MIGRATIONS = sorted((Path(__file__).resolve().parents[2] / "supabase" / "migrations").glob("*.sql"))
AGENDA_TABLES = ("agenda_vendedor", "agendamentos", "historico_interacoes")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
SUPABASE_ROLES = ("anon", "authenticated", "service_role")  # they exist in every Supabase


def agenda_prepare(*, admin_dsn: str, dsn: str, name: str) -> None:
    """Create database `name` (through `admin_dsn`), Supabase's roles and the shipped migrations
    (applied twice, as `supabase db push` or a re-run in the SQL editor would)."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for role in SUPABASE_ROLES:
            admin.execute(
                sql.SQL(
                    "DO $$ BEGIN CREATE ROLE {} NOLOGIN; "
                    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                ).format(sql.Identifier(role))
            )
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(2):
            for migration in MIGRATIONS:
                conn.execute(migration.read_text(encoding="utf-8").encode())


def _split_top_level(text: str) -> list[str]:
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


OPERATORS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "neq": "<>"}


def _condition(column: str, operator: str, value: str) -> tuple[sql.Composable, list[Any]]:
    assert IDENTIFIER.match(column), column
    name = sql.Identifier(column)
    if operator == "is":
        assert value == "null", value
        return sql.SQL("{} IS NULL").format(name), []
    if operator == "in":
        values = [_unquote(v) for v in _split_top_level(value[1:-1])]
        return sql.SQL("{}::text = ANY(%s)").format(name), [values]
    return sql.SQL("{} {} %s").format(name, sql.SQL(OPERATORS[operator])), [_unquote(value)]


def _logic(kind: str, inner: str) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for item in _split_top_level(inner):
        if item.startswith(("and(", "or(")):
            nested_kind, rest = item.split("(", 1)
            part, more = _logic(nested_kind, rest[:-1])
        else:
            column, operator, value = item.split(".", 2)
            part, more = _condition(column, operator, value)
        parts.append(sql.SQL("({})").format(part))
        params += more
    return sql.SQL(f" {kind.upper()} ").join(parts), params


# PostgREST's HTTP status for a Postgres error (docs: references/errors), the codes met here.
def _status(sqlstate: str) -> int:
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate == "42501":
        return 403
    if sqlstate == "42P01":
        return 404
    if sqlstate[:2] in ("08", "53"):
        return 503
    if sqlstate[:2] in ("25", "40", "57", "58", "XX"):
        return 500
    return 400


class PostgrestStandIn:
    """Answers scheduling/supabase.py's requests from the scratch database, as PostgREST."""

    def __init__(self, dsn: str, *, role: str = "service_role", keep_requests: bool = True) -> None:
        self.dsn, self.role, self.keep_requests = dsn, role, keep_requests
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.keep_requests:
            self.requests.append(request)
        table = request.url.path.rsplit("/", 1)[-1]
        assert table in AGENDA_TABLES, table
        where: list[sql.Composable] = []
        params: list[Any] = []
        order: list[sql.Composable] = []
        limit: sql.Composable = sql.SQL("")
        for key, value in parse_qsl(request.url.query.decode(), keep_blank_values=True):
            if key == "select":
                assert value == "*"
            elif key == "order":
                for term in value.split(","):
                    column, direction = term.split(".")
                    assert IDENTIFIER.match(column), column
                    assert direction in ("asc", "desc"), direction
                    order.append(
                        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(direction))
                    )
            elif key == "limit":
                limit = sql.SQL("LIMIT {}").format(sql.Literal(int(value)))
            elif key in ("or", "and"):
                condition, more = _logic(key, value[1:-1])
                where.append(condition)
                params += more
            else:
                operator, _, operand = value.partition(".")
                condition, more = _condition(key, operator, operand)
                where.append(condition)
                params += more
        filters = sql.SQL(" AND ").join(where) if where else sql.SQL("true")
        target = sql.SQL("public.{}").format(sql.Identifier(table))
        if request.method == "GET":
            statement = sql.SQL(
                "SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT * FROM {} WHERE {} {} {}) t"
            ).format(
                target,
                filters,
                sql.SQL("ORDER BY ") + sql.SQL(", ").join(order) if order else sql.SQL(""),
                limit,
            )
        else:
            body = json.loads(request.content)
            columns = sql.SQL(", ").join(map(sql.Identifier, body))
            source = sql.SQL("SELECT {} FROM json_populate_record(null::{}, %s::json)").format(
                columns, target
            )
            if request.method == "POST":
                change = sql.SQL("INSERT INTO {} ({}) {} RETURNING *").format(
                    target, columns, source
                )
                params = [json.dumps(body)]
            else:
                assert request.method == "PATCH"
                change = sql.SQL("UPDATE {} SET ({}) = ({}) WHERE {} RETURNING *").format(
                    target, columns, source, filters
                )
                params = [json.dumps(body), *params]
            statement = sql.SQL(
                "WITH changed AS ({}) SELECT coalesce(json_agg(changed), '[]')::text FROM changed"
            ).format(change)
        try:
            connection = psycopg.connect(self.dsn, connect_timeout=5)
        except psycopg.OperationalError as exc:  # PostgREST cannot reach its database
            return httpx.Response(
                503,
                json={"code": "PGRST001", "details": str(exc)[:300], "hint": None,
                      "message": "Database client error. Retrying the connection."},
            )  # fmt: skip
        try:
            with connection as conn, conn.transaction():
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.role)))
                conn.execute("SET LOCAL timezone = 'UTC'")
                row = conn.execute(statement, params).fetchone()
        except psycopg.Error as exc:
            code = exc.sqlstate or "XX000"
            return httpx.Response(
                _status(code),
                json={
                    "code": code,
                    "details": exc.diag.message_detail,
                    "hint": exc.diag.message_hint,
                    "message": exc.diag.message_primary,
                },
            )
        assert row is not None
        rows = json.loads(row[0])
        span = f"0-{len(rows) - 1}/*" if rows and request.method == "GET" else "*/*"
        status = 201 if request.method == "POST" else 200
        return httpx.Response(
            status,
            content=row[0].encode(),
            headers={"Content-Type": "application/json; charset=utf-8", "Content-Range": span},
        )


class PostgrestServer:
    """The stand-in over HTTP on 127.0.0.1 (a thread of this process), for hub processes:
    SUPABASE_URL=<url>, SUPABASE_SERVICE_ROLE_KEY=<key>. A request without that key in `apikey`
    gets 401, as from Supabase's gateway; a database that cannot be reached gets 503 (PGRST001).
    Counts every answer by table and status."""

    def __init__(self, dsn: str, *, key: str) -> None:
        self.stand_in = PostgrestStandIn(dsn, keep_requests=False)
        self.key = key
        self.statuses: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                response = server.answer(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(response.status_code)
                for name in ("Content-Type", "Content-Range"):
                    if name in response.headers:
                        self.send_header(name, response.headers[name])
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(response.content)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        table = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        lowered = {k.lower(): v for k, v in headers.items()}
        if lowered.get("apikey") != self.key:
            response = httpx.Response(401, json={"message": "Invalid API key"})
        else:
            request = httpx.Request(
                method, f"{self.url}{path}", headers=headers, content=body or None
            )
            try:
                response = self.stand_in(request)
            except AssertionError as exc:  # a request the stand-in does not know
                response = httpx.Response(400, json={"code": "PGRST100", "message": str(exc)})
        with self._lock:
            self.statuses[f"{method} {table} {response.status_code}"] += 1
        return response

    def __enter__(self) -> "PostgrestServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
