"""The promotion engine: a pure, policy-driven PROMOTE / DEFER / SUPPRESS decision.

Same candidate + same policy (id and version) + same authority → same decision, with the
same decision id, and so the same incident id: the ids are uuid5 over the inputs.
Policies are versioned and frozen: a changed rule is a new version, never an edit of an
old one (``tests/unit/test_promotion_engine.py`` pins each version's fingerprint).
"""

import hashlib
import json

from pydantic import ConfigDict, Field

from domain.candidates import (
    HUMAN_AUTHORITIES,
    AuthorityContext,
    AuthorityType,
    CandidateFacts,
    Decision,
    PromotionDecision,
    PromotionLimits,
)
from domain.enums import Severity
from domain.ids import derive_id
from domain.models import Strict

SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class PromotionError(ValueError):
    """A request the engine cannot decide: fail closed, never guess. ``kind`` names why,
    ``field`` the candidate field at fault when there is one (``metadata.policy_id``)."""

    def __init__(self, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.field = field


class PromotionPolicy(Strict):
    """One frozen version of a promotion policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_id: str
    version: str
    suppress_below: Severity = Field(description="a lower severity is suppressed")
    min_signals: int = Field(ge=0, description="fewer signals are deferred (automatic only)")
    auto_promote: bool = Field(description="whether AUTO_ENGINE may promote at all")
    manual_authorities: tuple[AuthorityType, ...] = Field(
        description="human authorities that may promote a candidate manually"
    )

    def fingerprint(self) -> str:
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


_ALL_HUMANS = HUMAN_AUTHORITIES
_SRE = (AuthorityType.ON_CALL_SRE, AuthorityType.EMERGENCY_OVERRIDE)

POLICIES: dict[tuple[str, str], PromotionPolicy] = {
    (p.policy_id, p.version): p
    for p in (
        PromotionPolicy(policy_id="default", version="1", suppress_below=Severity.MEDIUM,
                        min_signals=2, auto_promote=True, manual_authorities=_ALL_HUMANS),
        PromotionPolicy(policy_id="default", version="2", suppress_below=Severity.MEDIUM,
                        min_signals=3, auto_promote=True, manual_authorities=_ALL_HUMANS),
        PromotionPolicy(policy_id="strict", version="1", suppress_below=Severity.HIGH,
                        min_signals=5, auto_promote=True, manual_authorities=_SRE),
        PromotionPolicy(policy_id="manual-review", version="1", suppress_below=Severity.LOW,
                        min_signals=0, auto_promote=False, manual_authorities=_ALL_HUMANS),
    )
}  # fmt: skip


FROZEN_POLICY_IDS = tuple(sorted({policy_id for policy_id, _ in POLICIES}))


def allowed_policy_ids(limits: PromotionLimits) -> tuple[str, ...]:
    """The policy ids a tenant's submitters may name (its list, else every frozen one)."""
    return FROZEN_POLICY_IDS if limits.policy_ids is None else limits.policy_ids


def check_limits(signal_count: int, policy_id: object, limits: PromotionLimits) -> None:
    """Refuse a candidate outside its tenant's bounds (``PromotionError`` naming the field
    and the bound). A candidate naming no policy is left to ``build_request``."""
    _check_signal_count(signal_count, limits)
    _check_policy_allowed(policy_id, limits)


def check_candidate_limits(candidate: CandidateFacts, limits: PromotionLimits) -> None:
    check_limits(candidate.signal_count, candidate.metadata.get("policy_id"), limits)


def _check_signal_count(count: int, limits: PromotionLimits) -> None:
    bound = limits.max_signal_count
    if 0 <= count <= bound:
        return
    where = "below 0" if count < 0 else f"above the bound {bound}"
    raise PromotionError(
        "SignalCountOutOfBounds",
        f"signal_count: {count} is {where}: tenant {limits.tenant_id!r} allows 0 to {bound} "
        "(max_signal_count)",
        field="signal_count",
    )


def _check_policy_allowed(policy_id: object, limits: PromotionLimits) -> None:
    allowed = allowed_policy_ids(limits)
    if policy_id is None or policy_id in allowed:
        return
    raise PromotionError(
        "PolicyNotAllowed",
        f"metadata.policy_id: tenant {limits.tenant_id!r} may not use promotion policy "
        f"{policy_id!r} (allowed: {', '.join(allowed) or 'none'})",
        field="metadata.policy_id",
    )


class PromotionRequest(Strict):
    """Everything the engine decides on: candidate facts, policy reference, authority."""

    candidate: CandidateFacts
    policy_id: str
    policy_version: str
    authority: AuthorityContext
    context_hash: str


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def context_hash(candidate: CandidateFacts) -> str:
    """sha256 over the candidate's facts (never a clock: a replay must hash the same)."""
    facts = candidate.model_dump(mode="json", include=set(CandidateFacts.model_fields))
    return hashlib.sha256(canonical_json(facts).encode()).hexdigest()


def decision_id_for(
    candidate_id: str, policy_id: str, policy_version: str, authority: AuthorityContext, ctx: str
) -> str:
    who = f"{authority.authority_type}:{authority.authority_id}:{authority.session_id}"
    return derive_id("promotion-decision", candidate_id, policy_id, policy_version, who, ctx)


def incident_id_for(decision_id: str) -> str:
    return derive_id("candidate-incident", decision_id)


def build_request(candidate: CandidateFacts, authority: AuthorityContext) -> PromotionRequest:
    """The promotion request; the policy comes from the candidate's metadata only."""
    policy_id = candidate.metadata.get("policy_id")
    if not policy_id:
        raise PromotionError(
            "MissingPolicyId",
            f"candidate {candidate.candidate_id!r} has no policy id in its metadata "
            "(metadata.policy_id); refusing to choose a policy for it",
        )
    policy_version = candidate.metadata.get("policy_version")
    if not policy_version:
        raise PromotionError(
            "MissingPolicyVersion",
            f"candidate {candidate.candidate_id!r} names policy {policy_id!r} but no version "
            "(metadata.policy_version); refusing to pick one",
        )
    return PromotionRequest(
        candidate=candidate,
        policy_id=policy_id,
        policy_version=policy_version,
        authority=authority,
        context_hash=context_hash(candidate),
    )


def decide(
    request: PromotionRequest,
    policies: dict[tuple[str, str], PromotionPolicy] = POLICIES,
) -> PromotionDecision:
    """The one engine call: the policy's verdict for this candidate and authority."""
    policy = policies.get((request.policy_id, request.policy_version))
    if policy is None:
        raise PromotionError(
            "UnknownPolicy",
            f"unknown promotion policy {request.policy_id!r} version {request.policy_version!r} "
            f"(candidate {request.candidate.candidate_id!r})",
        )
    decision, reason = _verdict(policy, request.candidate, request.authority)
    decision_id = decision_id_for(
        request.candidate.candidate_id,
        request.policy_id,
        request.policy_version,
        request.authority,
        request.context_hash,
    )
    return PromotionDecision(
        decision_id=decision_id,
        candidate_id=request.candidate.candidate_id,
        decision=decision,
        reason=reason,
        policy_id=request.policy_id,
        policy_version=request.policy_version,
        authority=request.authority,
        context_hash=request.context_hash,
        incident_id=incident_id_for(decision_id) if decision == Decision.PROMOTE else None,
    )


def _verdict(
    policy: PromotionPolicy, candidate: CandidateFacts, authority: AuthorityContext
) -> tuple[Decision, str]:
    name = f"policy {policy.policy_id} v{policy.version}"
    if SEVERITY_RANK[candidate.severity] < SEVERITY_RANK[policy.suppress_below]:
        return Decision.SUPPRESS, (
            f"severity {candidate.severity} is below the floor {policy.suppress_below} of {name}"
        )
    if authority.authority_type == AuthorityType.AUTO_ENGINE:
        if not policy.auto_promote:
            return Decision.DEFER, f"{name} promotes only manually"
        if candidate.signal_count < policy.min_signals:
            return Decision.DEFER, (
                f"{candidate.signal_count} signal(s); {name} needs {policy.min_signals} "
                "to promote automatically; waiting for manual promotion"
            )
        return Decision.PROMOTE, (
            f"severity {candidate.severity} with {candidate.signal_count} signal(s) meets {name}"
        )
    if authority.authority_type not in policy.manual_authorities:
        return Decision.DEFER, (
            f"{authority.authority_type} may not promote under {name}; "
            f"allowed: {', '.join(policy.manual_authorities)}"
        )
    return Decision.PROMOTE, (
        f"manual promotion by {authority.authority_id} ({authority.authority_type}) under "
        f"{name}: {authority.justification}"
    )
