"""GRPO reward components, registry and combiner."""
