"""The services layer: one module per domain, each the one writer of its tables.

A service owns its writes and the transaction they run in (``sessions.begin()``, or
``services.ledger.run_once`` for a workflow's exactly-once writes). Activities are thin
``@activity.defn`` wrappers over these functions; the CLI and the HTTP API call them too,
never a table directly. Services are synchronous and import only ``domain``, ``db`` and
``observability``: no activity context, no Temporal client, no settings.
"""
