"""Training: model and adapter loading, SFT, merge, GRPO, callbacks."""
