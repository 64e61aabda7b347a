"""The claim-check codec (runtime.claim_check) on SQLite and PostgreSQL: a payload over the
threshold goes to payload_blobs and comes back; one at the threshold, and every small one,
passes untouched without the database being opened; the same content is one row, however
often and however concurrently it is stored; a tampered, missing or unreadable blob is a
ClaimCheckError naming its hash (never an ApplicationError); with encryption the blob is
ciphertext; the settings refuse a threshold that is not positive; retention purges blobs
unused for their TTL and keeps those an open run may still need."""

import asyncio
import hashlib
import json
import threading
import uuid
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from db.engine import make_engine, make_session_factory
from db.models import PayloadBlob
from domain.enums import Phase
from domain.reconcile_messages import PurgeCounts
from domain.retention import RetentionPolicy
from runtime.claim_check import (
    ENCODING,
    ClaimCheckCodec,
    ClaimCheckError,
    DatabaseBlobStore,
    parse_reference,
)
from runtime.payload_codec import ENCODING as ENCRYPTED
from runtime.payload_codec import process_codec
from runtime.settings import Settings
from services import payload_blobs
from services.retention import purge_expired
from tests.conftest import BACKENDS
from tests.helpers import assert_settings_refused
from tests.retention_support import DAY, add_run, database_url, migrated, now

pytestmark = pytest.mark.timeout(60)

THRESHOLD = 1024


def payload(size: int, encoding: bytes = b"json/plain") -> Payload:
    """A payload of exactly ``size`` bytes (ByteSize), of unique content."""
    body = json.dumps(uuid.uuid4().hex).encode()
    guess = size - Payload(metadata={"encoding": encoding}, data=body).ByteSize()
    for pad in range(max(0, guess - 4), guess + 5):
        p = Payload(metadata={"encoding": encoding}, data=body + b" " * pad)
        if p.ByteSize() == size:
            return p
    raise AssertionError(f"no payload of {size} bytes")


def blob_row(sessions, sha256: str) -> PayloadBlob | None:  # noqa: ANN001
    with sessions() as session:
        return session.get(PayloadBlob, sha256)


def codec_of(sessions, threshold: int | None = THRESHOLD) -> ClaimCheckCodec:  # noqa: ANN001
    return ClaimCheckCodec(DatabaseBlobStore(sessions), threshold)


class Never:
    """A sessions provider that must not be called: the database is never opened."""

    calls = 0

    def __call__(self):  # noqa: ANN204
        self.calls += 1
        raise AssertionError("the claim check opened the database")


async def test_a_large_payload_round_trips_through_the_store(sessions):
    codec = codec_of(sessions)
    big, small = payload(50_000), payload(100)
    encoded = await codec.encode([small, big])
    assert encoded[0] == small  # untouched
    ref = encoded[1]
    assert ref.metadata["encoding"] == ENCODING and ref.ByteSize() < 200
    sha256, size = parse_reference(ref)
    row = blob_row(sessions, sha256)
    assert row is not None and row.size == size == len(row.data)
    assert hashlib.sha256(row.data).hexdigest() == sha256
    assert Payload.FromString(row.data) == big  # the whole payload, metadata included
    assert await codec.decode(encoded) == [small, big]


async def test_the_threshold_is_exclusive_and_small_payloads_never_open_the_database(sessions):
    never = Never()
    untouched = ClaimCheckCodec(DatabaseBlobStore(never), THRESHOLD)
    at = [payload(THRESHOLD), payload(60), Payload()]
    assert await untouched.encode(at) == at
    assert await untouched.decode(at) == at
    assert never.calls == 0
    over = payload(THRESHOLD + 1)
    [ref] = await codec_of(sessions).encode([over])
    assert ref.metadata["encoding"] == ENCODING
    assert blob_row(sessions, parse_reference(ref)[0]) is not None
    with pytest.raises(AssertionError, match="opened the database"):
        await untouched.encode([over])  # one byte over: the store is needed


async def test_the_same_content_is_one_row_and_its_use_is_refreshed_once_a_day(sessions):
    codec = codec_of(sessions)
    big = payload(5000)
    first, second = await codec.encode([big]), await codec.encode([big])
    assert first == second
    sha256 = parse_reference(first[0])[0]
    with sessions() as session:
        assert (
            len(session.scalars(select(PayloadBlob).where(PayloadBlob.sha256 == sha256)).all()) == 1
        )
    row = blob_row(sessions, sha256)
    assert row.created_at == row.last_used_at
    # Stored again within a day: nothing written. A day later: last_used_at moves on, the
    # row (its created_at, its bytes) stays — through the ON CONFLICT path.
    assert payload_blobs.store(sessions, {sha256: row.data}, row.last_used_at + DAY / 2) == 0
    later = row.last_used_at + 2 * DAY
    assert payload_blobs.store(sessions, {sha256: row.data}, later) == 1
    refreshed = blob_row(sessions, sha256)
    assert (refreshed.created_at, refreshed.last_used_at) == (row.created_at, later)
    # Reading it a day after that refreshes it too.
    assert payload_blobs.load(sessions, [sha256], later + 2 * DAY) == {sha256: row.data}
    assert blob_row(sessions, sha256).last_used_at == later + 2 * DAY


def test_concurrent_stores_of_the_same_content_all_succeed_and_make_one_row(sessions):
    data = Payload(metadata={"encoding": b"json/plain"}, data=uuid.uuid4().bytes * 2000)
    blob = data.SerializeToString(deterministic=True)
    sha256 = hashlib.sha256(blob).hexdigest()
    rounds, writers = 5, 6
    errors: list[BaseException] = []
    for n in range(rounds):
        key = f"{sha256[:-2]}{n:02d}"  # a fresh key each round: every writer finds it missing
        barrier = threading.Barrier(writers)

        def write(key: str = key, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                payload_blobs.store(sessions, {key: blob})
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert blob_row(sessions, key) is not None
    assert errors == []
    with sessions() as session:
        keys = session.scalars(
            select(PayloadBlob.sha256).where(PayloadBlob.sha256.like(f"{sha256[:-2]}%"))
        ).all()
    assert len(keys) == rounds


async def test_a_tampered_or_missing_blob_is_a_retryable_error_naming_its_hash(sessions):
    codec = codec_of(sessions)
    [ref] = await codec.encode([payload(4000)])
    sha256 = parse_reference(ref)[0]
    with sessions.begin() as session:
        session.execute(
            update(PayloadBlob).where(PayloadBlob.sha256 == sha256).values(data=b"x" * 4000)
        )
    with pytest.raises(ClaimCheckError, match=f"sha256:{sha256} does not match") as tampered:
        await codec.decode([ref])
    assert not isinstance(tampered.value, ApplicationError)  # the workflow task fails, retried
    with sessions.begin() as session:
        session.delete(session.get(PayloadBlob, sha256))
    with pytest.raises(ClaimCheckError, match=f"sha256:{sha256} .* is not in payload_blobs"):
        await codec.decode([ref])
    with pytest.raises(ClaimCheckError, match="malformed reference"):
        await codec.decode([Payload(metadata={"encoding": ENCODING}, data=b'{"sha256": 1}')])


async def test_a_store_that_does_not_answer_is_a_claim_check_error_naming_the_hash(tmp_path):
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    codec = codec_of(make_session_factory(engine))
    ref = Payload(metadata={"encoding": ENCODING},
                  data=json.dumps({"sha256": "ab" * 32, "size": 9}).encode())  # fmt: skip
    with pytest.raises(ClaimCheckError, match=f"could not read payload blob.*sha256:{'ab' * 32}"):
        await codec.decode([ref])
    with pytest.raises(ClaimCheckError, match="could not store payload blob"):
        await codec.encode([payload(THRESHOLD + 1)])
    engine.dispose()


async def test_with_encryption_the_blob_is_ciphertext_and_both_decode_in_reverse(
    sessions, settings
):
    secret = f"the quarterly numbers {uuid.uuid4().hex}"
    keyed = settings.model_copy(update={"payload_encryption_keys": Fernet.generate_key().decode()})
    codec = process_codec(keyed, sessions)
    big = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(secret * 2000).encode())
    small = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(secret).encode())
    encoded = await codec.encode([big, small])
    assert encoded[0].metadata["encoding"] == ENCODING  # encrypted, then claim-checked
    assert encoded[1].metadata["encoding"] == ENCRYPTED  # small: encrypted only
    row = blob_row(sessions, parse_reference(encoded[0])[0])
    stored = Payload.FromString(row.data)
    assert stored.metadata["encoding"] == ENCRYPTED
    assert secret.encode() not in row.data and b"quarterly" not in row.data
    assert await codec.decode(encoded) == [big, small]
    # Another process without the keys gets the blob back, still encrypted.
    [still_encrypted, _] = await process_codec(settings, sessions).decode(encoded)
    assert still_encrypted.metadata["encoding"] == ENCRYPTED


async def test_turned_off_nothing_new_is_stored_and_references_still_resolve(sessions, settings):
    on = process_codec(settings, sessions)
    big = payload(settings.claim_check_threshold_bytes + 1)
    [ref] = await on.encode([big])
    off = process_codec(settings.model_copy(update={"claim_check_enabled": False}), sessions)
    assert await off.encode([big]) == [big]
    assert await off.decode([ref]) == [big]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLAIM_CHECK_THRESHOLD_BYTES": "0"}, "CLAIM_CHECK_THRESHOLD_BYTES=0 must be between 1"),
        ({"CLAIM_CHECK_THRESHOLD_BYTES": "-5"}, "CLAIM_CHECK_THRESHOLD_BYTES=-5 must be between"),
        ({"CLAIM_CHECK_THRESHOLD_BYTES": "3000000"}, "CLAIM_CHECK_THRESHOLD_BYTES=3000000"),
        ({"RETENTION_PAYLOAD_BLOBS_SECONDS": "3600"},
         "RETENTION_PAYLOAD_BLOBS_SECONDS=3600 must be at least 93900"),
        ({"RETENTION_PAYLOAD_BLOBS_SECONDS": "100000", "RUN_TIMEOUT_SECONDS": "86400"},
         "RETENTION_PAYLOAD_BLOBS_SECONDS=100000 must be at least 173100"),
    ],
)  # fmt: skip
def test_a_bad_claim_check_setting_is_refused_naming_it(env, named, monkeypatch, tmp_path, capsys):
    message = assert_settings_refused(env, named, monkeypatch, tmp_path, capsys)
    if "CLAIM_CHECK" in named:
        assert "set CLAIM_CHECK_ENABLED=false" in message


def test_off_and_keep_forever_are_accepted(monkeypatch):
    monkeypatch.setenv("CLAIM_CHECK_ENABLED", "false")
    monkeypatch.setenv("RETENTION_PAYLOAD_BLOBS_SECONDS", "0")
    s = Settings(_env_file=None)
    assert (s.claim_check_enabled, s.retention_policy().payload_blobs_seconds) == (False, 0)


@pytest.fixture(params=BACKENDS)
def own_db(request, fresh_database, tmp_path):  # noqa: ANN001, ANN201
    engine, sessions = migrated(database_url(request.param, fresh_database, tmp_path))
    yield sessions
    engine.dispose()


def add_blob(sessions, last_used_at) -> str:  # noqa: ANN001
    data = uuid.uuid4().bytes * 10
    sha256 = hashlib.sha256(data).hexdigest()
    payload_blobs.store(sessions, {sha256: data}, last_used_at)
    return sha256


def blob_keys(sessions) -> set[str]:  # noqa: ANN001
    with sessions() as session:
        return set(session.scalars(select(PayloadBlob.sha256)))


def test_retention_purges_unused_blobs_but_keeps_what_an_open_run_may_need(own_db):
    t = now()
    policy = RetentionPolicy(page_size=2)  # 30 days
    old = [add_blob(own_db, t - 40 * DAY - i * timedelta(seconds=1)) for i in range(3)]
    recent = add_blob(own_db, t - 20 * DAY)
    fresh = add_blob(own_db, t - 10 * DAY)
    # A run closed long ago guards nothing.
    add_run(own_db, Phase.COMPLETED, created_at=t - 50 * DAY, finalized_at=t - 49 * DAY,
            ledger_rows=0)  # fmt: skip
    result = purge_expired(own_db, policy)
    assert result.purged == PurgeCounts(payload_blobs=3) and result.pages == 2
    assert blob_keys(own_db) == {recent, fresh}
    assert blob_keys(own_db).isdisjoint(old)
    # A run open for 35 days (a tenant's longer run timeout, a long pause): every blob used
    # since a day before it started stays, past the TTL.
    add_run(own_db, Phase.EXECUTING, created_at=t - 35 * DAY, ledger_rows=0)
    kept = add_blob(own_db, t - 33 * DAY)
    gone = add_blob(own_db, t - 37 * DAY)
    assert purge_expired(own_db, policy).purged == PurgeCounts(payload_blobs=1)
    assert blob_keys(own_db) == {recent, fresh, kept}
    assert gone not in blob_keys(own_db)
    forever = RetentionPolicy(payload_blobs_seconds=0)
    add_blob(own_db, t - 400 * DAY)
    assert purge_expired(own_db, forever).purged == PurgeCounts()


def test_a_blob_stored_again_after_it_was_chosen_is_not_deleted(own_db):
    t = now()
    sha256 = add_blob(own_db, t - 40 * DAY)
    data = blob_row(own_db, sha256).data
    payload_blobs.store(own_db, {sha256: data}, t)  # used again: refreshed
    with own_db.begin() as session:
        assert payload_blobs.delete_blobs(session, [sha256], t - 30 * DAY) == 0
    assert blob_keys(own_db) == {sha256}


def test_the_codec_runs_its_database_work_off_the_event_loop(sessions, monkeypatch):
    seen: list[bool] = []
    real = payload_blobs.store

    def store(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            asyncio.get_running_loop()
            seen.append(False)
        except RuntimeError:
            seen.append(True)  # no loop in this thread: a worker thread
        return real(*args, **kwargs)

    monkeypatch.setattr(payload_blobs, "store", store)  # the real one, watched
    asyncio.run(codec_of(sessions).encode([payload(THRESHOLD + 10)]))
    assert seen == [True]
