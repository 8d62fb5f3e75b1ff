"""Training data: teachers, synthesis, curation."""
