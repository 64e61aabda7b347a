"""The API's limits against a hostile caller, on the real dev server and both databases.

Bodies: over HTTP_MAX_BODY_BYTES is a 413 before the body is read (declared or streamed),
and an unauthenticated request is a 401 before its body is read. Values no store can hold
(NaN, Infinity, 1e400, lone surrogates, overlong text) are 422s naming the field, and no
422 echoes a large input. Runs: a tenant at its runs-in-flight limit gets a 429 with
Retry-After; a run id in use is a 409 with the same words whoever holds it.
"""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, update

from api.admission import RETRY_AFTER_SECONDS
from api.app import create_app
from api.errors import MAX_ECHO_CHARS, MAX_ERRORS, validation_response
from api.json_body import MAX_DEPTH, MAX_STRING_CHARS
from api.server import bound_port, serving
from db.models import Run, Tenant
from db.queries.limits import TenantLimits, runs_in_flight, tenant_limits
from tests.helpers import echo_steps, outcome, running_worker

pytestmark = pytest.mark.timeout(120)
MiB = 1024 * 1024
LIMIT = MiB  # the default HTTP_MAX_BODY_BYTES
CHUNK = 64 * 1024


# --- helpers -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def served(app_settings, sessions, dev_env, **overrides) -> AsyncIterator[int]:
    """The app served for real by uvicorn on a free port (yields the port)."""
    app = create_app(app_settings.model_copy(update=overrides), sessions, dev_env.client)
    async with serving(app, "127.0.0.1", 0) as server:
        yield bound_port(server)


@contextlib.asynccontextmanager
async def client_for(app_settings, sessions, dev_env, **overrides):
    """An httpx client on the app in process, with settings overridden."""
    app = create_app(app_settings.model_copy(update=overrides), sessions, dev_env.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def request_head(*, key: str | None, length: int | None, media: str = "application/json") -> bytes:
    lines = ["POST /runs HTTP/1.1", "Host: api", f"Content-Type: {media}"]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    if key:
        lines.append(f"X-API-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.split(": ", 1) for line in header_lines)
    headers = {name.lower(): value for name, value in headers.items()}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def send_until_answered(
    port: int, head: bytes, chunks: Iterator[bytes]
) -> tuple[int, dict[str, str], bytes, int]:
    """Send ``head``, then body chunks until the server answers; (status, headers, body,
    body bytes handed to the socket before the answer came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(read_response(reader))
    sent = 0
    try:
        writer.write(head)
        for chunk in chunks:
            if answer.done():
                break
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)
    except ConnectionError:
        pass  # the server closed the connection after answering
    finally:
        status, headers, body = await asyncio.wait_for(answer, 10)
        writer.close()
    return status, headers, body, sent


def plain_chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // CHUNK):
        yield b" " * CHUNK


def http_chunks(total: int) -> Iterator[bytes]:
    """``total`` bytes of chunked transfer encoding (never the closing zero chunk)."""
    for chunk in plain_chunks(total):
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"


async def post_raw(api, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return await api.post(
        "/runs", content=raw, headers={**headers, "content-type": "application/json"}
    )


async def started_for(dev_env, tenant: str) -> list:
    return [w async for w in dev_env.client.list_workflows(f'TenantId="{tenant}"')]


def run_rows(sessions, tenant: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).where(Run.tenant_id == tenant)) or 0


def seed_run(sessions, tenant: str, phase: str, status: str, run_id: str | None = None) -> str:
    """A run row (no workflow behind it), as RunWorkflow writes when it opens."""
    run_id = run_id or f"seed-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(
            Run(
                id=run_id,
                tenant_id=tenant,
                workflow_id=f"run-{run_id}",
                phase=phase,
                status=status,
                steps_total=1,
                config={},
                created_at=now,
                updated_at=now,
            )
        )
    return run_id


def set_tenant_limits(sessions, tenant: str, runs: int | None, steps: int | None = None) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Tenant)
            .where(Tenant.id == tenant)
            .values(max_runs_in_flight=runs, max_steps_in_flight=steps)
        )


def assert_422_naming(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = json.loads(response.content)  # strict JSON: no NaN, valid UTF-8
    assert field in body["error"], body["error"]
    assert any(".".join(map(str, d["loc"])).startswith(field) for d in body["detail"]), body


# --- body size, before the body is read ----------------------------------------------


async def test_a_65_mb_body_without_a_key_is_413_before_it_is_read(dev_env, app_settings, sessions):
    async with served(app_settings, sessions, dev_env) as port:
        head = request_head(key=None, length=65 * MiB)
        status, headers, body, sent = await send_until_answered(port, head, plain_chunks(65 * MiB))
    assert status == 413
    assert json.loads(body) == {
        "detail": f"request body is larger than {LIMIT} bytes (HTTP_MAX_BODY_BYTES)"
    }
    assert b"\n" not in body and headers["connection"] == "close"
    assert sent < 16 * MiB  # answered long before the body was through


async def test_a_declared_body_over_the_limit_is_413_with_a_key_too(
    dev_env, app_settings, sessions, tenant_keys
):
    keys = tenant_keys()
    async with served(app_settings, sessions, dev_env) as port:
        head = request_head(key=keys.admin["X-API-Key"], length=LIMIT + 1)
        status, _, _, sent = await send_until_answered(port, head, iter(()))
    assert status == 413 and sent == 0
    assert await started_for(dev_env, keys.tenant) == []


@pytest.mark.parametrize("media", ["application/json", "text/plain"])
async def test_a_streamed_body_is_cut_at_the_limit(
    dev_env, app_settings, sessions, tenant_keys, media
):
    keys = tenant_keys()
    async with served(app_settings, sessions, dev_env) as port:
        head = request_head(key=keys.admin["X-API-Key"], length=None, media=media)
        status, _, body, sent = await send_until_answered(port, head, http_chunks(65 * MiB))
    assert status == 413, body
    assert "HTTP_MAX_BODY_BYTES" in json.loads(body)["detail"]
    assert LIMIT < sent < 16 * MiB
    assert await started_for(dev_env, keys.tenant) == []


async def test_an_unauthenticated_request_is_401_before_its_body_is_read(
    dev_env, app_settings, sessions
):
    async with served(app_settings, sessions, dev_env) as port:
        for key in (None, "gr_not-a-key"):
            head = request_head(key=key, length=LIMIT // 2)
            status, headers, body, sent = await send_until_answered(port, head, iter(()))
            assert (status, sent) == (401, 0)  # no byte of the body was needed
            assert json.loads(body)["detail"] == "missing or invalid API key (header X-API-Key)"
            assert headers["www-authenticate"] == "X-API-Key"


async def test_a_body_under_the_limit_is_served(api, dev_env, tenant_keys):
    keys = tenant_keys()
    steps = [{"skill": "echo", "input": {"text": "y" * 50_000}} for _ in range(18)]
    response = await api.post("/runs", json={"steps": steps}, headers=keys.admin)
    assert response.status_code == 202, response.text  # 900 kB: under 1 MiB
    assert len(await started_for(dev_env, keys.tenant)) == 1


# --- values no store can hold --------------------------------------------------------

ONE_STEP = '{"skill":"echo","input":{"text":"a"}}'
UNREPRESENTABLE = [
    (f'{{"steps":[{ONE_STEP}],"budget":NaN}}', "body.budget"),
    (f'{{"steps":[{ONE_STEP}],"budget":Infinity}}', "body.budget"),
    (f'{{"steps":[{ONE_STEP}],"budget":-Infinity}}', "body.budget"),
    (f'{{"steps":[{ONE_STEP}],"budget":1e400}}', "body.budget"),
    ('{"steps":[{"skill":"llm","input":{"prompt":"x","temperature":-1e400}}]}',
     "body.steps.0.input.temperature"),
    ('{"steps":[{"skill":"http","input":{"url":"https://example.com","json_body":[NaN]}}]}',
     "body.steps.0.input.json_body.0"),
    ('{"steps":[{"skill":"echo","input":{"text":"\\ud800"}}]}', "body.steps.0.input.text"),
    ('{"steps":[{"skill":"echo","input":{"text":"a\\udfffb"}}]}', "body.steps.0.input.text"),
    ('{"steps":[{"skill":"template","input":{"template":"x","variables":{"\\ud800":1}}}]}',
     "body.steps.0.input.variables"),
    ('{"steps":[{"skill":"http","input":{"url":"https://example.com","json_body":'
     + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "}}]}", "body.steps.0.input.json_body"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "field"), UNREPRESENTABLE)
async def test_unrepresentable_values_are_422_naming_the_field(
    api, dev_env, sessions, tenant_keys, raw, field
):
    keys = tenant_keys()
    response = await post_raw(api, raw.encode(), keys.admin)
    assert_422_naming(response, field)
    assert await started_for(dev_env, keys.tenant) == [] and run_rows(sessions, keys.tenant) == 0


async def test_surrogates_encoded_as_utf8_bytes_are_422(api, tenant_keys):
    keys = tenant_keys()
    raw = '{"steps":[{"skill":"echo","input":{"text":"\ud800"}}]}'.encode("utf-8", "surrogatepass")
    assert_422_naming(await post_raw(api, raw, keys.admin), "body.steps.0.input.text")
    not_utf8 = await post_raw(api, b'{"steps": "\xff"}', keys.admin)
    assert_422_naming(not_utf8, "body")


async def test_a_stop_reason_with_nan_or_a_surrogate_is_422(api, tenant_keys):
    keys = tenant_keys()
    run_id = (await api.post("/runs", json={"steps": echo_steps(1)}, headers=keys.admin)).json()[
        "run_id"
    ]
    for raw in ('{"reason": NaN}', '{"reason": "\\ud800"}'):
        response = await api.post(
            f"/runs/{run_id}/stop",
            content=raw.encode(),
            headers={**keys.admin, "content-type": "application/json"},
        )
        assert_422_naming(response, "body.reason")


async def test_a_3_mb_text_is_422_naming_the_field(dev_env, app_settings, sessions, tenant_keys):
    keys = tenant_keys()
    body = {"steps": [{"skill": "echo", "input": {"text": "x" * 3_000_000}}]}
    async with client_for(app_settings, sessions, dev_env, http_max_body_bytes=8 * MiB) as api:
        response = await api.post("/runs", json=body, headers=keys.admin)
    assert_422_naming(response, "body.steps.0.input.text")
    assert f"longer than {MAX_STRING_CHARS} characters" in response.json()["error"]
    assert len(response.content) < 2000
    assert await started_for(dev_env, keys.tenant) == []


async def test_a_text_over_the_bound_is_422_under_the_default_body_limit(api, tenant_keys):
    keys = tenant_keys()
    body = {"steps": [{"skill": "echo", "input": {"text": "x" * (MAX_STRING_CHARS + 1)}}]}
    response = await api.post("/runs", json=body, headers=keys.admin)
    assert_422_naming(response, "body.steps.0.input.text")


async def test_a_run_too_large_for_temporal_is_422(dev_env, app_settings, sessions, tenant_keys):
    keys = tenant_keys()
    steps = [{"skill": "echo", "input": {"text": "x" * 90_000}} for _ in range(30)]  # 2.7 MB
    async with client_for(app_settings, sessions, dev_env, http_max_body_bytes=8 * MiB) as api:
        response = await api.post("/runs", json={"steps": steps}, headers=keys.admin)
    assert_422_naming(response, "body")
    assert "bytes once encoded" in response.json()["error"]
    assert await started_for(dev_env, keys.tenant) == []


BIG = 50_000
NOT_ECHOED = [
    ({"steps": echo_steps(1), "budget": "x" * BIG}, "body.budget"),
    ({"steps": [{"skill": "s" * BIG}]}, "body.steps.0"),
    ({"steps": echo_steps(1), "options": {"o" * BIG: 1}}, "body.options"),
    ({"steps": [{"skill": "echo", "input": {"text": "t", "x" * BIG: 1}}]}, "body.steps.0"),
]


@pytest.mark.parametrize(("body", "field"), NOT_ECHOED)
async def test_a_422_never_echoes_a_large_input(api, tenant_keys, body, field):
    keys = tenant_keys()
    response = await api.post("/runs", json=body, headers=keys.admin)
    assert_422_naming(response, field)
    assert len(response.content) < 4 * MAX_ECHO_CHARS + 500, len(response.content)
    for detail in response.json()["detail"]:
        assert set(detail) == {"loc", "msg", "type"}
        assert len(detail["msg"]) <= MAX_ECHO_CHARS


async def test_a_large_body_of_another_type_is_not_echoed(api, tenant_keys):
    keys = tenant_keys()
    response = await api.post(
        "/runs", content=b"z" * 500_000, headers={**keys.admin, "content-type": "text/plain"}
    )
    assert response.status_code == 422 and len(response.content) < 1000


def test_a_422_body_can_always_be_encoded():
    hostile = {
        "loc": ("body", "k\ud800" * 100, 3),
        "msg": "bad \udfff " + "m" * 10_000,
        "type": "value_error",
        "input": float("inf"),
        "ctx": {"error": ValueError("nan"), "limit": float("nan")},
    }
    response = validation_response([hostile] * (MAX_ERRORS + 5))
    body = json.loads(response.body.decode("utf-8"))  # strict: valid UTF-8, no NaN
    assert len(body["detail"]) == MAX_ERRORS and body["error"].endswith("and 5 more errors")
    first = body["detail"][0]
    assert set(first) == {"loc", "msg", "type"} and first["loc"][2] == 3
    assert len(first["msg"]) == len(first["loc"][1]) == MAX_ECHO_CHARS
    assert "\\ud800" in first["loc"][1]


# --- runs in flight ------------------------------------------------------------------


async def test_runs_in_flight_over_the_tenants_limit_are_429_and_start_nothing(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    keys = tenant_keys()
    set_tenant_limits(sessions, keys.tenant, runs=1)
    first = (await api.post("/runs", json={"steps": echo_steps(1)}, headers=keys.admin)).json()
    assert (await api.post(f"/runs/{first['run_id']}/pause", headers=keys.admin)).status_code == 202
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        for _ in range(200):  # the run opens (its row) and holds at its pause
            with sessions() as session:
                if runs_in_flight(session, keys.tenant) == 1:
                    break
            await asyncio.sleep(0.05)
        refused = await api.post("/runs", json={"steps": echo_steps(1)}, headers=keys.admin)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert refused.json()["detail"] == (
            "the tenant has 1 runs in flight and its limit (max_runs_in_flight) is 1; "
            "retry when one has ended"
        )
        assert [w.id for w in await started_for(dev_env, keys.tenant)] == [first["workflow_id"]]

        await api.post(f"/runs/{first['run_id']}/stop", headers=keys.admin)
        await outcome(dev_env.client.get_workflow_handle(first["workflow_id"]))
        again = await api.post("/runs", json={"steps": echo_steps(1)}, headers=keys.admin)
        assert again.status_code == 202, again.text
        await outcome(dev_env.client.get_workflow_handle(again.json()["workflow_id"]))


async def test_the_settings_default_applies_when_the_tenant_sets_no_limit(
    dev_env, app_settings, sessions, tenant_keys
):
    keys = tenant_keys()
    for phase, status in (("EXECUTING", "running"), ("AUTHORIZED", "queued")):
        seed_run(sessions, keys.tenant, phase, status)
    seed_run(sessions, keys.tenant, "COMPLETED", "succeeded")  # ended: not in flight
    body = {"steps": echo_steps(1)}
    async with client_for(app_settings, sessions, dev_env, max_runs_in_flight_per_tenant=2) as api:
        refused = await api.post("/runs", json=body, headers=keys.admin)
        assert refused.status_code == 429 and "is 2;" in refused.json()["detail"]
        set_tenant_limits(sessions, keys.tenant, runs=3)  # the tenant's own wins
        assert (await api.post("/runs", json=body, headers=keys.admin)).status_code == 202
    set_tenant_limits(sessions, keys.tenant, runs=None)
    async with client_for(
        app_settings, sessions, dev_env, max_runs_in_flight_per_tenant=None
    ) as api:  # no limit anywhere
        assert (await api.post("/runs", json=body, headers=keys.admin)).status_code == 202


def test_limits_queries(sessions, tenant_keys):
    mine, theirs = tenant_keys(), tenant_keys()
    for phase, status in (("CREATED", "queued"), ("EXECUTING", "paused"),
                          ("FINALIZING", "running"), ("COMPLETED", "succeeded"),
                          ("FAILED", "cancelled")):  # fmt: skip
        seed_run(sessions, mine.tenant, phase, status)
    seed_run(sessions, theirs.tenant, "EXECUTING", "running")
    set_tenant_limits(sessions, mine.tenant, runs=7, steps=3)
    with sessions() as session:
        assert runs_in_flight(session, mine.tenant) == 3
        assert runs_in_flight(session, theirs.tenant) == 1
        assert runs_in_flight(session, "no-such-tenant") == 0
        assert tenant_limits(session, mine.tenant) == TenantLimits(7, 3)
        assert tenant_limits(session, theirs.tenant) == TenantLimits(None, None)
        assert tenant_limits(session, "no-such-tenant") == TenantLimits()
    assert TenantLimits(None, 3).or_defaults(100, 16) == TenantLimits(100, 3)
    assert TenantLimits().or_defaults(None, None) == TenantLimits()


# --- run ids: global, and never telling whose --------------------------------------------


def in_use(run_id: str) -> dict[str, str]:
    return {"detail": f"run id {run_id!r} is already in use; choose another or omit run_id"}


async def test_a_run_id_in_use_is_the_same_409_whoever_holds_it(
    dev_env, api, sessions, tenant_keys
):
    owner, stranger = tenant_keys(), tenant_keys()
    live = f"r-{uuid.uuid4().hex[:12]}"  # a workflow in Temporal (no worker: no row yet)
    body = {"run_id": live, "steps": echo_steps(1)}
    assert (await api.post("/runs", json=body, headers=owner.admin)).status_code == 202
    stored = seed_run(sessions, owner.tenant, "COMPLETED", "succeeded")  # a row, no workflow
    for run_id in (live, stored):
        body = {"run_id": run_id, "steps": echo_steps(1)}
        own = await api.post("/runs", json=body, headers=owner.admin)
        foreign = await api.post("/runs", json=body, headers=stranger.admin)
        assert own.status_code == foreign.status_code == 409, (own.text, foreign.text)
        assert own.json() == foreign.json() == in_use(run_id)
        assert owner.tenant not in foreign.text
    assert await started_for(dev_env, stranger.tenant) == []
    assert [w.id for w in await started_for(dev_env, owner.tenant)] == [f"run-{live}"]


async def test_another_tenants_run_id_reads_as_unknown(api, sessions, tenant_keys):
    owner, stranger = tenant_keys(), tenant_keys()
    stored = seed_run(sessions, owner.tenant, "COMPLETED", "succeeded")
    live = (await api.post("/runs", json={"steps": echo_steps(1)}, headers=owner.admin)).json()[
        "run_id"
    ]
    for run_id in (stored, live):
        for path in ("", "/evidence", "/proof", "/governance"):
            foreign = await api.get(f"/runs/{run_id}{path}", headers=stranger.admin)
            unknown = await api.get(f"/runs/never-{run_id}{path}", headers=stranger.admin)
            assert foreign.status_code == unknown.status_code == 404, (path, foreign.text)
            assert foreign.json() == {"detail": f"unknown run {run_id!r}"}
            assert unknown.json() == {"detail": f"unknown run {'never-' + run_id!r}"}
            assert foreign.headers.keys() == unknown.headers.keys()
