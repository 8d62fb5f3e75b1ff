"""The CPU demo: tiny model and tokenizer builder, the toy clinical task, sample responses."""
