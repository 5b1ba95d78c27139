"""The base stage: the setting's starting model, built (the tiny preset) or fetched at a pinned revision."""
