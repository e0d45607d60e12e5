"""Sub-commands of `capret`; each module registers one (or a small group)."""
