"""Secret commands: set (the value from stdin, never argv), list (names only), delete.

    printf %s "$TOKEN" | python starter.py secret set acme api-token
    python starter.py secret list acme
    python starter.py secret delete acme api-token

A step input references a secret as ``${secret:NAME}`` inside any string value.
"""

import getpass
import sys
from typing import Annotated

import typer

from activities.secret_store import SecretBox, SecretKeyError
from cli.context import CliError, Context, Json, command, output, tenant_hint
from services import secrets
from services.errors import AdminError

app = typer.Typer(name="secret", help="manage tenant secrets")

TenantId = Annotated[str, typer.Argument()]
Name = Annotated[str, typer.Argument()]


def read_value() -> str:
    """The value: typed without echo on a terminal, else all of stdin less one final newline."""
    if sys.stdin.isatty():
        return getpass.getpass("secret value: ")
    value = sys.stdin.read()
    return value.removesuffix("\n").removesuffix("\r")


def _guard(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return fn(*args, **kwargs)
    except (AdminError, SecretKeyError) as exc:
        raise CliError(tenant_hint(str(exc))) from None


@command(app, "set", help="store a secret; the value is read from stdin")
async def set_secret(ctx: Context, tenant_id: TenantId, name: Name) -> None:
    box = SecretBox.of_deployment(ctx.settings.secrets_key, ctx.settings.data_dir)
    created = _guard(secrets.set_secret, ctx.sessions, box, tenant_id, name, read_value())
    print(f"secret {name} {'stored' if created else 'replaced'} for tenant {tenant_id}"
          f" (reference it as ${{secret:{name}}})")  # fmt: skip


@command(app, "list", help="a tenant's secret names (never their values)")
async def list_secrets(ctx: Context, tenant_id: TenantId, as_json: Json = False) -> None:
    listed = _guard(secrets.list_secrets, ctx.existing_sessions, tenant_id)
    output(as_json, listed, lambda ss: "\n".join(
        f"{s['name']}  {s['reference']}  updated {s['updated_at']:%Y-%m-%d %H:%M:%S}"
        for s in ss) or f"no secrets for tenant {tenant_id}")  # fmt: skip


@command(app, "delete", help="delete a secret")
async def delete_secret(ctx: Context, tenant_id: TenantId, name: Name) -> None:
    _guard(secrets.delete_secret, ctx.sessions, tenant_id, name)
    print(f"secret {name} deleted for tenant {tenant_id}")
