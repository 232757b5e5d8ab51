"""CLI subcommands, one module per group; each exposes ``register(subparsers)`` and sets ``run`` handlers."""
