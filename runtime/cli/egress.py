"""The egress command: show or set a tenant's egress allow-list.

    python starter.py tenant egress acme                      # show it
    python starter.py tenant egress acme --allow http://127.0.0.1:18080 --allow https://api.example.com
    python starter.py tenant egress acme --allow '*://10.0.0.0/8:*'
    python starter.py tenant egress acme --clear

Each ``--allow`` is scheme://host[:port] (``*`` for any; no port: the scheme's default) or
a JSON object {"scheme", "host", "port"}; the list given replaces the tenant's list.
"""

import argparse

from runtime.cli.context import CliError, Context, add_json_flag, output, tenant_hint
from services import tenants
from services.errors import AdminError


def _tenant_commands(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subcommands of ``tenant`` (registered by runtime.cli.admin), or a new ``tenant``."""
    tenant = sub.choices.get("tenant")
    if tenant is None:
        return sub.add_parser("tenant", help="manage tenants").add_subparsers(
            dest="tenant_command", required=True
        )
    return next(a for a in tenant._actions if isinstance(a, argparse._SubParsersAction))


def register(sub: argparse._SubParsersAction) -> None:
    p = _tenant_commands(sub).add_parser(
        "egress", help="show or set a tenant's egress allow-list (outbound http/llm calls)"
    )
    p.add_argument("tenant_id")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--allow", action="append", metavar="RULE",
                       help="scheme://host[:port] or a JSON rule; repeat for more")  # fmt: skip
    group.add_argument("--clear", action="store_true", help="no entries of its own")
    add_json_flag(p)
    p.set_defaults(handler=tenant_egress)


def _text(tenant_id: str, rules: list[dict] | None) -> str:
    if not rules:
        return f"tenant {tenant_id}: no egress allow-list entries (the default policy applies)"
    lines = [f"{r['scheme']}://{r['host']}:{r['port']}" for r in rules]
    return f"tenant {tenant_id}: egress allowed to\n" + "\n".join(f"  {line}" for line in lines)


async def tenant_egress(ctx: Context, args: argparse.Namespace) -> None:
    try:
        if args.allow:
            rules = tenants.set_egress_allow(
                ctx.sessions, args.tenant_id, tenants.parse_allow(args.allow)
            )
        elif args.clear:
            rules = tenants.set_egress_allow(ctx.sessions, args.tenant_id, None)
        else:
            rules = tenants.get_egress_allow(ctx.sessions, args.tenant_id)
    except AdminError as exc:
        raise CliError(tenant_hint(str(exc))) from None
    output(args, {"tenant_id": args.tenant_id, "egress_allow": rules},
           lambda d: _text(d["tenant_id"], d["egress_allow"]))  # fmt: skip
