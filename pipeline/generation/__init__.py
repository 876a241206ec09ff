"""Generating text: the sampler and the MLflow-served generator."""
