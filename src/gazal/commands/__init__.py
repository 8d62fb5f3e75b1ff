"""One module per ``gazal`` command; each exposes ``register(subparsers)`` and keeps heavy
imports (torch, transformers) inside the function that runs the command."""
