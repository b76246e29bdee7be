"""Probes of what a model keeps and how it trains: representation accuracy and ablations."""
