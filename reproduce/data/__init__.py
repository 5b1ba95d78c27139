"""Preference data: built on-policy (the paper's recipe) or downloaded at a pinned revision."""
