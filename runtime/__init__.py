"""Process plumbing: settings, the stack (database + Temporal), the embedded Temporal server,
the Temporal connection, the worker factory, the workflow sandbox and the process exit; the
reconcile schedule. (The demo and the operator CLI live here until the CLI rewrite.)"""
