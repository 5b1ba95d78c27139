"""Judges: who answers the protocols' judge prompts. Definitions are YAML under evals/judges/."""
