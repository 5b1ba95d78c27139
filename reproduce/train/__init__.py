"""Training: one TRL-based preference trainer for every method; losses are small registered functions."""
