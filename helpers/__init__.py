"""Helpers for the deep-learning course kit: one module per idea (see README)."""
