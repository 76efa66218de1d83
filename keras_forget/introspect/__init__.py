"""What a model is made of: which weights can be pruned, which units must go together."""
