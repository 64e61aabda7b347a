"""Secret commands: set (the value from stdin, never argv), list (names only), delete.

    printf %s "$TOKEN" | python starter.py secret set acme api-token
    python starter.py secret list acme
    python starter.py secret delete acme api-token

A step input references a secret as ``${secret:NAME}`` inside any string value.
"""

import argparse
import getpass
import sys

from activities.secret_store import SecretBox, SecretKeyError
from runtime.cli.context import CliError, Context, add_json_flag, output, tenant_hint
from services import secrets
from services.errors import AdminError


def register(sub: argparse._SubParsersAction) -> None:
    secret = sub.add_parser("secret", help="manage tenant secrets").add_subparsers(
        dest="secret_command", required=True
    )
    p = secret.add_parser("set", help="store a secret; the value is read from stdin")
    p.add_argument("tenant_id")
    p.add_argument("name")
    p.set_defaults(handler=set_secret)
    p = secret.add_parser("list", help="a tenant's secret names (never their values)")
    p.add_argument("tenant_id")
    add_json_flag(p)
    p.set_defaults(handler=list_secrets)
    p = secret.add_parser("delete", help="delete a secret")
    p.add_argument("tenant_id")
    p.add_argument("name")
    p.set_defaults(handler=delete_secret)


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


async def set_secret(ctx: Context, args: argparse.Namespace) -> None:
    box = SecretBox.of_deployment(ctx.settings.secrets_key, ctx.settings.data_dir)
    created = _guard(secrets.set_secret, ctx.sessions, box, args.tenant_id, args.name,
                     read_value())  # fmt: skip
    print(f"secret {args.name} {'stored' if created else 'replaced'} for tenant {args.tenant_id}"
          f" (reference it as ${{secret:{args.name}}})")  # fmt: skip


async def list_secrets(ctx: Context, args: argparse.Namespace) -> None:
    listed = _guard(secrets.list_secrets, ctx.existing_sessions, args.tenant_id)
    output(args, listed, lambda ss: "\n".join(
        f"{s['name']}  {s['reference']}  updated {s['updated_at']:%Y-%m-%d %H:%M:%S}"
        for s in ss) or f"no secrets for tenant {args.tenant_id}")  # fmt: skip


async def delete_secret(ctx: Context, args: argparse.Namespace) -> None:
    _guard(secrets.delete_secret, ctx.sessions, args.tenant_id, args.name)
    print(f"secret {args.name} deleted for tenant {args.tenant_id}")
