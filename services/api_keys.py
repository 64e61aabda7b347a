"""API keys: create (the key is shown once), authenticate, list and revoke (the CLI
creates, lists and revokes; the HTTP API authenticates).

Only the sha256 of a key is stored. A key acts for one tenant with one authority; its
creation and revocation are written to the audit ledger (ids derived from the key id and
the event: a key is created once and revoked at most once). The one writer of
``api_keys``.

The promotion authority a key promotes candidates with is the key's own
(``api_keys.promotion_authority``, set by the operator at creation) or else the operator's
mapping of its authority (``PROMOTION_AUTHORITIES``); a request never chooses it.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import ApiKey, Tenant
from domain.candidates import AuthorityType, human_authority_type
from domain.enums import Authority
from services.errors import ApiKeyError
from services.ledger import audit_entry, utcnow

KEY_PREFIX = "gr_"


class NoPromotionAuthority(ValueError):
    """The key may not promote candidates; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who an authenticated request acts as."""

    key_id: str
    tenant_id: str
    authority: Authority
    promotion_authority: str | None = None  # the key's own; None: the operator's mapping

    @property
    def actor_id(self) -> str:
        return f"apikey:{self.key_id}"


def promotion_authority_of(principal: Principal, mapping: dict[str, str]) -> AuthorityType:
    """The human authority the key promotes with: its own, else ``mapping[authority]``
    (settings PROMOTION_AUTHORITIES); NoPromotionAuthority when there is none."""
    if principal.promotion_authority is not None:
        value, source = principal.promotion_authority, f"{principal.actor_id} promotion authority"
    elif principal.authority in mapping:
        value = mapping[principal.authority]
        source = f"PROMOTION_AUTHORITIES[{principal.authority}]"
    else:
        raise NoPromotionAuthority(
            f"{principal.actor_id} ({principal.authority}) may not promote: the key has no "
            f"promotion authority and PROMOTION_AUTHORITIES maps {principal.authority} to "
            f"nothing (mapped: {', '.join(mapping) or 'none'})"
        )
    try:
        return human_authority_type(value, source)
    except ValueError as exc:
        raise NoPromotionAuthority(f"{principal.actor_id} may not promote: {exc}") from None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _audit(session: Session, key: ApiKey, event: str, actor: str) -> None:
    audit_entry(
        session,
        key=f"api-key/{key.id}/{event}",
        tenant_id=key.tenant_id,
        event_type=event,
        entity_type="api_key",
        entity_id=key.id,
        after_state={
            "key_id": key.id,
            "authority": key.authority,
            "promotion_authority": key.promotion_authority,
            "name": key.name,
        },
        actor_id=actor,
        actor_authority="TENANT_ADMIN",
        source="admin",
    )


def _promotion_authority(value: str | None) -> AuthorityType | None:
    if value is None:
        return None
    try:
        return human_authority_type(value, "promotion_authority")
    except ValueError as exc:
        raise ApiKeyError(str(exc)) from None


def create_key(
    sessions: sessionmaker[Session],
    tenant_id: str,
    authority: str,
    *,
    name: str | None = None,
    promotion_authority: str | None = None,
    actor: str = "operator",
) -> tuple[str, str]:
    """Store a new key for an existing tenant; returns (key id, the key itself).
    ``promotion_authority``: the human authority it promotes candidates with (never
    AUTO_ENGINE); None leaves it to the operator's PROMOTION_AUTHORITIES mapping."""
    try:
        level = Authority(authority)
    except ValueError:
        allowed = ", ".join(a.value for a in Authority)
        raise ApiKeyError(f"authority: {authority!r} is not one of {allowed}") from None
    promotes_as = _promotion_authority(promotion_authority)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with sessions.begin() as session:
        if session.get(Tenant, tenant_id) is None:
            raise ApiKeyError(f"unknown tenant {tenant_id!r}")
        row = ApiKey(
            id=str(uuid.uuid4()),
            key_hash=hash_key(key),
            prefix=key[:10],
            tenant_id=tenant_id,
            authority=level,
            promotion_authority=promotes_as,
            name=name or f"{tenant_id}-{level.value.lower()}",
            created_at=utcnow(),
        )
        session.add(row)
        _audit(session, row, "API_KEY_CREATED", actor)
    return row.id, key


def authenticate(sessions: sessionmaker[Session], key: str) -> Principal | None:
    """The principal of a valid, unrevoked key; None otherwise."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    with sessions() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
        if row is None or row.revoked_at is not None:
            return None
        return Principal(row.id, row.tenant_id, Authority(row.authority), row.promotion_authority)


def list_keys(
    sessions: sessionmaker[Session], tenant_id: str | None = None
) -> list[dict[str, Any]]:
    with sessions() as session:
        stmt = select(ApiKey).order_by(ApiKey.tenant_id, ApiKey.created_at)
        if tenant_id:
            stmt = stmt.where(ApiKey.tenant_id == tenant_id)
        return [
            {
                "id": k.id,
                "prefix": k.prefix,
                "tenant_id": k.tenant_id,
                "authority": k.authority,
                "promotion_authority": k.promotion_authority,
                "name": k.name,
                "created_at": k.created_at.isoformat(),
                "revoked": k.revoked_at is not None,
            }
            for k in session.scalars(stmt)
        ]


def revoke_key(sessions: sessionmaker[Session], key_id: str, *, actor: str = "operator") -> None:
    with sessions.begin() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise ApiKeyError(f"unknown api key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            _audit(session, row, "API_KEY_REVOKED", actor)
