"""The promotion engine is pure: same inputs → same decision, decision id and incident id."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.candidates import (
    AuthorityContext,
    AuthorityType,
    CandidateFacts,
    CandidateLookup,
    CandidateSnapshot,
    CandidateStatus,
    CandidateSubmission,
    Decision,
    PromotionDecision,
    PromotionLimits,
    auto_engine_authority,
    human_authority_type,
)
from domain.enums import Authority, Severity
from domain.promotion import (
    FROZEN_POLICY_IDS,
    POLICIES,
    SEVERITY_RANK,
    PromotionError,
    build_request,
    check_candidate_limits,
    check_limits,
    decide,
    incident_id_for,
)
from services.api_keys import NoPromotionAuthority, Principal, promotion_authority_of

pytestmark = pytest.mark.timeout(120)


def facts(**over) -> CandidateFacts:
    base = {
        "candidate_id": "cand-1",
        "tenant_id": "acme",
        "correlation_rule_id": "rule-cpu",
        "correlation_rule_version": "3",
        "signal_count": 4,
        "severity": "HIGH",
        "service": "checkout",
        "metadata": {"policy_id": "default", "policy_version": "1"},
    }
    return CandidateFacts.model_validate(base | over)


def human(kind: AuthorityType = AuthorityType.HUMAN_OPERATOR, who: str = "alice"):
    return AuthorityContext(
        authority_type=kind, authority_id=who, session_id="cand-1", justification="looked at it"
    )


def run(candidate: CandidateFacts, authority: AuthorityContext | None = None) -> PromotionDecision:
    return decide(build_request(candidate, authority or auto_engine_authority("cand-1")))


# ----- the verdicts of the policies --------------------------------------------------------


def test_default_policy_promotes_with_enough_signals():
    d = run(facts())
    assert d.decision == Decision.PROMOTE
    assert d.incident_id == incident_id_for(d.decision_id)
    assert "meets policy default v1" in d.reason
    assert d.authority == auto_engine_authority("cand-1")


def test_too_few_signals_defer_and_low_severity_is_suppressed():
    deferred = run(facts(signal_count=1))
    assert (deferred.decision, deferred.incident_id) == (Decision.DEFER, None)
    assert "needs 2" in deferred.reason
    suppressed = run(facts(severity="LOW", signal_count=50))
    assert (suppressed.decision, suppressed.incident_id) == (Decision.SUPPRESS, None)
    assert "below the floor MEDIUM" in suppressed.reason


def test_policy_version_is_taken_from_metadata_and_changes_the_verdict():
    three = {"policy_id": "default", "policy_version": "2"}
    assert run(facts(signal_count=2)).decision == Decision.PROMOTE
    assert run(facts(signal_count=2, metadata=three)).decision == Decision.DEFER


def test_manual_review_policy_defers_the_engine_and_lets_humans_promote():
    meta = {"policy_id": "manual-review", "policy_version": "1"}
    assert run(facts(metadata=meta)).decision == Decision.DEFER
    promoted = run(facts(metadata=meta), human())
    assert promoted.decision == Decision.PROMOTE
    assert "manual promotion by alice (HUMAN_OPERATOR)" in promoted.reason
    assert "looked at it" in promoted.reason


def test_strict_policy_lets_only_sre_authorities_promote_manually():
    meta = {"policy_id": "strict", "policy_version": "1"}
    refused = run(facts(signal_count=1, metadata=meta), human())
    assert refused.decision == Decision.DEFER and "may not promote" in refused.reason
    allowed = run(facts(signal_count=1, metadata=meta), human(AuthorityType.ON_CALL_SRE))
    assert allowed.decision == Decision.PROMOTE


def test_suppression_applies_to_humans_too():
    assert run(facts(severity="LOW"), human()).decision == Decision.SUPPRESS


# ----- fail closed -------------------------------------------------------------------------


def test_missing_policy_id_fails_closed_naming_the_field():
    with pytest.raises(PromotionError, match=r"no policy id .*metadata\.policy_id") as info:
        build_request(facts(metadata={}), auto_engine_authority("cand-1"))
    assert info.value.kind == "MissingPolicyId"


def test_missing_policy_version_fails_closed():
    with pytest.raises(PromotionError, match=r"metadata\.policy_version") as info:
        build_request(facts(metadata={"policy_id": "default"}), auto_engine_authority("cand-1"))
    assert info.value.kind == "MissingPolicyVersion"


def test_unknown_policy_fails_closed():
    meta = {"policy_id": "default", "policy_version": "99"}
    with pytest.raises(PromotionError, match="unknown promotion policy 'default' version '99'"):
        run(facts(metadata=meta))


# ----- ids ---------------------------------------------------------------------------------


def test_ids_depend_on_candidate_policy_and_authority_only():
    base = run(facts())
    assert run(facts(signal_count=5)).decision_id != base.decision_id
    other_policy = {"policy_id": "default", "policy_version": "2"}
    assert run(facts(metadata=other_policy)).decision_id != base.decision_id
    assert run(facts(), human()).decision_id != base.decision_id
    assert run(facts(), human(who="bob")).decision_id != run(facts(), human()).decision_id
    # status and timestamps are not facts: the stored candidate decides like the submitted one
    stored = CandidateSnapshot(
        **facts().model_dump(), status=CandidateStatus.DEFERRED, created_at="2026-01-19T00:00:00Z"
    )
    assert run(stored).decision_id == base.decision_id
    assert run(stored).incident_id == base.incident_id


def test_policy_versions_are_frozen():
    """A changed policy must be a new version: these fingerprints never change."""
    assert {key: p.fingerprint()[:12] for key, p in POLICIES.items()} == FINGERPRINTS


FINGERPRINTS = {
    ("default", "1"): "3980f16f9796",
    ("default", "2"): "ae0d3626104a",
    ("strict", "1"): "38b5ec74d690",
    ("manual-review", "1"): "d2b264bee479",
}


# ----- the submission schema ---------------------------------------------------------------


def test_candidate_created_event_in_camel_case_is_accepted():
    event = {
        "eventType": "CandidateCreated",
        "candidateId": "cand-9",
        "correlationRuleId": "rule-err",
        "correlationRuleVersion": "1",
        "signalCount": 3,
        "severity": "SEV2",
        "service": "payments",
        "createdAt": "2026-01-19T10:00:00Z",
        "metadata": {"policyId": "default", "policyVersion": 1},
    }
    sub = CandidateSubmission.model_validate(event)
    assert sub.severity == Severity.HIGH
    assert sub.facts().metadata == {"policy_id": "default", "policy_version": "1"}
    snake = CandidateSubmission.model_validate(
        {**sub.facts().model_dump(), "metadata": {"policy_id": "default", "policy_version": "1"}}
    )
    assert run(snake.facts()).decision_id == run(sub.facts()).decision_id


def test_bad_submission_names_the_field():
    with pytest.raises(ValidationError) as info:
        CandidateSubmission.model_validate(
            {"candidate_id": "c", "correlation_rule_id": "r", "correlation_rule_version": "1",
             "signal_count": -1, "severity": "HUGE", "service": "s", "sevrity": "x"}
        )  # fmt: skip
    fields = {e["loc"][0] for e in info.value.errors()}
    assert fields == {"signal_count", "severity", "sevrity"}


def test_policy_id_of_the_wrong_type_is_refused():
    with pytest.raises(ValidationError, match="policy_id must be a non-empty string"):
        facts(metadata={"policy_id": 7, "policy_version": "1"})


# ----- a tenant's limits and who may promote -----------------------------------------------


def limits(policies: tuple[str, ...] | None = None, bound: int = 10) -> PromotionLimits:
    return PromotionLimits(tenant_id="acme", policy_ids=policies, max_signal_count=bound)


def test_signal_count_is_bounded_on_both_sides_naming_the_bound():
    check_limits(0, "default", limits())
    check_limits(10, "default", limits())
    with pytest.raises(PromotionError) as above:
        check_limits(1_000_000_000, "default", limits())
    assert (above.value.kind, above.value.field) == ("SignalCountOutOfBounds", "signal_count")
    assert str(above.value) == (
        "signal_count: 1000000000 is above the bound 10: tenant 'acme' allows 0 to 10 "
        "(max_signal_count)"
    )
    with pytest.raises(PromotionError, match="signal_count: -1 is below 0: tenant 'acme'"):
        check_limits(-1, "default", limits())


def test_only_the_tenants_policies_or_every_frozen_one_may_be_named():
    assert FROZEN_POLICY_IDS == ("default", "manual-review", "strict")
    for policy_id in FROZEN_POLICY_IDS:
        check_limits(1, policy_id, limits())  # no list: every frozen policy
    check_limits(1, None, limits(()))  # no policy named: the engine fails it closed
    with pytest.raises(PromotionError) as info:
        check_candidate_limits(facts(metadata={"policy_id": "strict", "policy_version": "1"}),
                               limits(("default",)))  # fmt: skip
    assert (info.value.kind, info.value.field) == ("PolicyNotAllowed", "metadata.policy_id")
    assert str(info.value) == (
        "metadata.policy_id: tenant 'acme' may not use promotion policy 'strict' (allowed: default)"
    )
    with pytest.raises(PromotionError, match=r"'bogus' \(allowed: default, manual-review"):
        check_limits(1, "bogus", limits())
    with pytest.raises(PromotionError, match=r"\(allowed: none\)"):
        check_limits(1, "default", limits(()))


def test_a_lookup_recorded_before_limits_existed_has_none():
    """What a replay of an old history decodes: no limits, so nothing to check."""
    stored = CandidateSnapshot(
        **facts().model_dump(), status=CandidateStatus.PENDING, created_at="2026-01-19T00:00:00Z"
    )
    old = {"candidate": stored.model_dump(mode="json")}
    assert CandidateLookup.model_validate(old).limits is None


def test_auto_engine_is_never_a_human_authority():
    assert human_authority_type("ON_CALL_SRE", "x") == AuthorityType.ON_CALL_SRE
    with pytest.raises(ValueError, match="src: AUTO_ENGINE is the promotion engine's own"):
        human_authority_type("AUTO_ENGINE", "src")
    with pytest.raises(ValueError, match="src: 'ROOT' is not one of HUMAN_OPERATOR"):
        human_authority_type("ROOT", "src")


DEFAULT_MAPPING = {"TENANT_ADMIN": "HUMAN_OPERATOR", "FOUNDER_ONLY": "HUMAN_OPERATOR"}


def test_the_key_promotes_with_its_own_authority_else_the_operators_mapping():
    admin = Principal("k1", "acme", Authority.TENANT_ADMIN)
    assert promotion_authority_of(admin, DEFAULT_MAPPING) == AuthorityType.HUMAN_OPERATOR
    sre = Principal("k2", "acme", Authority.TENANT_USER, "ON_CALL_SRE")
    assert promotion_authority_of(sre, DEFAULT_MAPPING) == AuthorityType.ON_CALL_SRE
    user = Principal("k3", "acme", Authority.TENANT_USER)
    with pytest.raises(NoPromotionAuthority, match=r"apikey:k3 \(TENANT_USER\) may not promote"):
        promotion_authority_of(user, DEFAULT_MAPPING)
    with pytest.raises(NoPromotionAuthority, match=r"PROMOTION_AUTHORITIES\[TENANT_ADMIN\]"):
        promotion_authority_of(admin, {"TENANT_ADMIN": "AUTO_ENGINE"})
    forged = Principal("k4", "acme", Authority.TENANT_ADMIN, "AUTO_ENGINE")  # a hand-edited row
    with pytest.raises(NoPromotionAuthority, match="apikey:k4 promotion authority: AUTO_ENGINE"):
        promotion_authority_of(forged, DEFAULT_MAPPING)


# ----- properties --------------------------------------------------------------------------

ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
candidates = st.builds(
    lambda cid, sev, n, service, key: facts(
        candidate_id=cid,
        severity=sev,
        signal_count=n,
        service=service,
        metadata={"policy_id": key[0], "policy_version": key[1], "team": service},
    ),
    ids,
    st.sampled_from(list(Severity)),
    st.integers(min_value=0, max_value=20),
    st.text(min_size=1, max_size=30),
    st.sampled_from(sorted(POLICIES)),
)
authorities = st.one_of(
    st.builds(auto_engine_authority, ids),
    st.builds(
        lambda kind, who, why: AuthorityContext(
            authority_type=kind, authority_id=who, session_id="s", justification=why
        ),
        st.sampled_from([a for a in AuthorityType if a != AuthorityType.AUTO_ENGINE]),
        ids,
        st.text(min_size=1, max_size=40),
    ),
)


@settings(max_examples=200, deadline=None)
@given(candidates, authorities)
def test_same_inputs_give_the_same_decision_and_ids(candidate, authority):
    first = run(candidate, authority)
    again = run(candidate.model_copy(deep=True), authority.model_copy(deep=True))
    assert again == first
    assert first.decision in set(Decision)
    assert (first.incident_id is not None) == (first.decision == Decision.PROMOTE)
    if first.incident_id:
        assert first.incident_id == incident_id_for(first.decision_id)


@settings(max_examples=100, deadline=None)
@given(candidates, authorities)
def test_ids_survive_the_temporal_payload_round_trip(candidate, authority):
    """What a replay sees (inputs decoded from history) decides exactly like the original."""
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([candidate, authority])
    decoded_candidate, decoded_authority = converter.from_payloads(
        payloads, [CandidateFacts, AuthorityContext]
    )
    assert run(decoded_candidate, decoded_authority) == run(candidate, authority)


@settings(max_examples=100, deadline=None)
@given(candidates, st.permutations(["policy_id", "policy_version", "team"]))
def test_metadata_key_order_does_not_change_the_ids(candidate, order):
    reordered = {key: candidate.metadata[key] for key in order}
    shuffled = candidate.model_copy(update={"metadata": json.loads(json.dumps(reordered))})
    assert run(shuffled).decision_id == run(candidate).decision_id


@settings(max_examples=200, deadline=None)
@given(candidates, authorities)
def test_suppression_exactly_when_below_the_policy_floor(candidate, authority):
    policy = POLICIES[(candidate.metadata["policy_id"], candidate.metadata["policy_version"])]
    below = SEVERITY_RANK[candidate.severity] < SEVERITY_RANK[policy.suppress_below]
    assert (run(candidate, authority).decision == Decision.SUPPRESS) == below
