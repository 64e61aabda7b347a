"""Tenant secrets: set (encrypted), list (names only), delete, and the ciphertexts a step
reads (activities.secret_store decrypts them for the skill being called).

A value is encrypted with the deployment's key (``box``: activities.secret_store.SecretBox)
before it is written and is never returned, printed or audited; the audit ledger records
who set or deleted which name, with an id derived from the tenant, the name, the event
and its time. The one writer of ``tenant_secrets``.
"""

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import reading
from db.models import Tenant, TenantSecret
from domain.ids import derive_id
from domain.secret_refs import is_valid_name, placeholder
from services.errors import AdminError
from services.ledger import audit_entry, utcnow


class Encrypts(Protocol):
    def encrypt(self, value: str) -> str: ...


def _checked_name(name: str) -> str:
    if not is_valid_name(name):
        raise AdminError(
            f"secret name {name!r}: letters, digits, '.', '_' and '-' (at most 100), "
            "starting with a letter or a digit"
        )
    return name


def _known_tenant(session: Session, tenant_id: str) -> None:
    if session.get(Tenant, tenant_id) is None:
        raise AdminError(f"unknown tenant {tenant_id!r}")


def _audit(session: Session, tenant_id: str, name: str, event: str, actor: str,
           at: datetime) -> None:  # fmt: skip
    audit_entry(
        session,
        key=f"{tenant_id}/secret/{name}/{event}/{at.isoformat()}",
        tenant_id=tenant_id,
        event_type=event,
        entity_type="tenant_secret",
        entity_id=derive_id(tenant_id, "secret", name),
        after_state={"tenant_id": tenant_id, "name": name, "reference": placeholder(name)},
        actor_id=actor,
        actor_authority="TENANT_ADMIN",
        source="admin",
    )


def set_secret(sessions: sessionmaker[Session], box: Encrypts, tenant_id: str, name: str,
               value: str, actor: str = "operator") -> bool:  # fmt: skip
    """Store (or replace) a tenant's secret; True if it is new. The value must not be empty."""
    _checked_name(name)
    if not value:
        raise AdminError("the secret value is empty")
    ciphertext = box.encrypt(value)
    with sessions.begin() as session:
        _known_tenant(session, tenant_id)
        now = utcnow()
        secret = session.get(TenantSecret, (tenant_id, name))
        created = secret is None
        if created:
            session.add(TenantSecret(tenant_id=tenant_id, name=name, ciphertext=ciphertext,
                                     created_at=now, updated_at=now))  # fmt: skip
        else:
            secret.ciphertext = ciphertext
            secret.updated_at = now
        _audit(session, tenant_id, name, "SECRET_CREATED" if created else "SECRET_UPDATED",
               actor, now)  # fmt: skip
    return created


def list_secrets(sessions: sessionmaker[Session], tenant_id: str) -> list[dict[str, Any]]:
    """Names and dates of a tenant's secrets — never their values."""
    with sessions() as session:
        _known_tenant(session, tenant_id)
        secrets = session.scalars(
            select(TenantSecret).where(TenantSecret.tenant_id == tenant_id)
            .order_by(TenantSecret.name)
        )  # fmt: skip
        return [{"name": s.name, "reference": placeholder(s.name), "created_at": s.created_at,
                 "updated_at": s.updated_at} for s in secrets]  # fmt: skip


def delete_secret(sessions: sessionmaker[Session], tenant_id: str, name: str,
                  actor: str = "operator") -> None:  # fmt: skip
    """Delete a tenant's secret; a step that still references it then fails naming it."""
    with sessions.begin() as session:
        secret = session.get(TenantSecret, (tenant_id, name))
        if secret is None:
            raise AdminError(f"unknown secret {name!r} for tenant {tenant_id!r}")
        session.delete(secret)
        _audit(session, tenant_id, name, "SECRET_DELETED", actor, utcnow())


def ciphertexts(
    sessions: sessionmaker[Session], tenant_id: str, names: list[str]
) -> dict[str, str]:
    """The stored ciphertexts of those of ``names`` the tenant has (one SELECT, no lock)."""
    with reading(sessions) as session:
        return dict(
            session.execute(
                select(TenantSecret.name, TenantSecret.ciphertext).where(
                    TenantSecret.tenant_id == tenant_id, TenantSecret.name.in_(names)
                )
            ).all()
        )
