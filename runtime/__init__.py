"""Process-level plumbing: settings, the embedded Temporal server, clients and workers."""
