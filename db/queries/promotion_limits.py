"""A tenant's promotion limits: the policies its submitters may name and the signal bound.

Shared by the submission (``clients.candidates``) and the workflow's load activity
(``activities.candidates``), so both refuse the same candidates. A tenant without a row
has no settings of its own: the operator's defaults apply.
"""

from sqlalchemy.orm import Session

from db.models import Tenant
from domain.candidates import PromotionLimits


def promotion_limits(
    session: Session, tenant_id: str, default_max_signal_count: int
) -> PromotionLimits:
    """``tenants.promotion_policies`` (null: every frozen policy) and
    ``tenants.max_signal_count`` (null: ``default_max_signal_count``)."""
    tenant = session.get(Tenant, tenant_id)
    policies = None if tenant is None else tenant.promotion_policies
    bound = None if tenant is None else tenant.max_signal_count
    return PromotionLimits(
        tenant_id=tenant_id,
        policy_ids=None if policies is None else tuple(policies),
        max_signal_count=default_max_signal_count if bound is None else bound,
    )
