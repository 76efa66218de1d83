"""Applying masks to models: which weights are prunable and how masks are held."""
