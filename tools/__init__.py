"""Developer tools run from the checkout (``starter.py bench``, ``starter.py chaos``): the
benchmarks (``tools.bench``) and the chaos test (``tools.chaos``). Not part of the
installed product; nothing in the product imports them at module level."""
