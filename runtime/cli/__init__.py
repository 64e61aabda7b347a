"""The operator CLI (starter.py): one module per group of subcommands.

Each module exposes ``register(subparsers)``; a subcommand's handler is
``async def handler(ctx: Context, args) -> None``. Errors end with one line on stderr
and a non-zero exit code.
"""
