"""API key commands: create (the key is printed once), list, revoke."""

import argparse

from domain.candidates import HUMAN_AUTHORITIES
from domain.enums import Authority
from runtime.cli.context import CliError, Context, add_json_flag, output, tenant_hint
from services import api_keys
from services.errors import ApiKeyError


def register(sub: argparse._SubParsersAction) -> None:
    apikey = sub.add_parser("apikey", help="manage HTTP API keys").add_subparsers(
        dest="apikey_command", required=True
    )
    p = apikey.add_parser("create", help="create a key for a tenant (printed once)")
    p.add_argument("tenant_id")
    p.add_argument("--authority", required=True, choices=[a.value for a in Authority])
    p.add_argument(
        "--promotion-authority",
        help="the authority it promotes candidates with: "
        f"{', '.join(HUMAN_AUTHORITIES)} (default: PROMOTION_AUTHORITIES of --authority)",
    )
    p.add_argument("--name", help="a label for the key")
    add_json_flag(p)
    p.set_defaults(handler=create)
    p = apikey.add_parser("list", help="list keys (never the keys themselves)")
    p.add_argument("--tenant")
    add_json_flag(p)
    p.set_defaults(handler=list_keys)
    p = apikey.add_parser("revoke", help="revoke a key by its id")
    p.add_argument("key_id")
    p.set_defaults(handler=revoke)


async def create(ctx: Context, args: argparse.Namespace) -> None:
    try:
        key_id, key = api_keys.create_key(
            ctx.sessions, args.tenant_id, args.authority, name=args.name,
            promotion_authority=args.promotion_authority,
        )  # fmt: skip
    except ApiKeyError as exc:
        raise CliError(tenant_hint(str(exc))) from None
    data = {"key_id": key_id, "tenant_id": args.tenant_id, "authority": args.authority,
            "promotion_authority": args.promotion_authority, "key": key}  # fmt: skip
    output(args, data, lambda d: (
        f"api key {d['key_id']} for tenant {d['tenant_id']} ({d['authority']}"
        f"{_promotes_as(d)}):\n{d['key']}\n"
        "store it now: it is not shown again (send it as the X-API-Key header)"))  # fmt: skip


def _promotes_as(key: dict) -> str:
    authority = key.get("promotion_authority")
    return f", promotes as {authority}" if authority else ""


async def list_keys(ctx: Context, args: argparse.Namespace) -> None:
    output(args, api_keys.list_keys(ctx.existing_sessions, args.tenant), lambda ks: "\n".join(
        f"{k['id']} {k['prefix']}... tenant={k['tenant_id']} {k['authority']}{_promotes_as(k)}"
        f" {k['name']}"
        f"{' REVOKED' if k['revoked'] else ''}" for k in ks) or "no api keys")  # fmt: skip


async def revoke(ctx: Context, args: argparse.Namespace) -> None:
    try:
        api_keys.revoke_key(ctx.sessions, args.key_id)
    except ApiKeyError as exc:
        raise CliError(str(exc)) from None
    print(f"api key {args.key_id} revoked")
