"""One module per ``memagent`` subcommand; each defines ``register(subparsers)``."""
