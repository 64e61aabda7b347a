"""Starting and controlling work through Temporal: runs (``clients.runs``) and candidates
(``clients.candidates``), shared by the CLI, the demo and the HTTP API. The connection
itself is process plumbing (``runtime.temporal_client``)."""
