"""Events: the outbox reactor, its handler registry and the audit handlers that raise alerts.

``events.reactor`` delivers each outbox event at least once to the handlers registered for
its topic (``events.registry``); ``events.handlers`` turns reconciliation findings and
failed runs into alerts. Every table write goes through services (services.deliveries,
services.alerts).
"""
