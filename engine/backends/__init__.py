"""Backends: where the LM's forward passes run (in-process transformers, or a vLLM server)."""
