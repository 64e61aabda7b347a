"""Hash chain laws and the audit contract declared at T0."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain import contract
from domain.hashchain import GENESIS_HASH, first_broken_link, step_content, step_hash


def chain(contents):
    prev, out = GENESIS_HASH, []
    for i, content in enumerate(contents):
        digest = step_hash(prev, content)
        out.append((i, prev, digest, content))
        prev = digest
    return out


def content(i, text):
    return step_content(run_id="r", step_index=i, skill="echo", input={"text": text},
                        output={"text": text}, cost="0.0001", status="OK", error=None)  # fmt: skip


@given(st.lists(st.text(max_size=20), min_size=1, max_size=12))
def test_intact_chain_verifies(texts):
    assert first_broken_link(chain([content(i, t) for i, t in enumerate(texts)])) is None


@given(st.lists(st.text(max_size=20), min_size=2, max_size=12), st.data())
def test_any_edit_is_found_at_its_step(texts, data):
    steps = chain([content(i, t) for i, t in enumerate(texts)])
    victim = data.draw(st.integers(0, len(steps) - 1))
    i, prev, digest, body = steps[victim]
    steps[victim] = (i, prev, digest, {**body, "output": {"text": body["output"]["text"] + "!"}})
    assert first_broken_link(steps) == victim


def test_hash_covers_previous_hash():
    body = content(0, "x")
    assert step_hash(GENESIS_HASH, body) != step_hash("f" * 64, body)


def test_cost_is_canonical_whatever_its_scale():
    a = step_content(run_id="r", step_index=0, skill="s", input={}, output={}, cost="0.0001",
                     status="OK", error=None)  # fmt: skip
    b = {**a, "cost": step_content(run_id="r", step_index=0, skill="s", input={}, output={},
                                   cost="0.000100", status="OK", error=None)["cost"]}  # fmt: skip
    assert a == b


def test_declared_contract_has_deadlines_and_finalize():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    declared = contract.declare(3, t0, timedelta(hours=2), timedelta(minutes=5))
    actions = [(e.domain, e.action) for e in declared]
    assert actions == [
        ("runs", "authorize"),
        ("traces", "start_trace"),
        ("traces", "record_step:0"),
        ("traces", "record_step:1"),
        ("traces", "record_step:2"),
        ("policies", "evaluate_policy"),
        ("traces", "complete_trace"),
        ("orchestrator", "finalize_run"),
    ]
    assert all(e.deadline is not None for e in declared)
    assert declared[-1].deadline == t0 + timedelta(hours=2, minutes=5)
