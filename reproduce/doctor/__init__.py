"""``reproduce doctor``: a preflight of a preset before any GPU-hour is spent, one line per check and a
non-zero exit on a blocker.

Modules: ``result`` (one check's line), ``hub`` (the hub token and access to every model and dataset at
its pinned revision, by HEAD requests), ``machine`` (free disk against the plan's needs; GPUs visible here
or on the SLURM partition against the plan's peak; SLURM reachable), ``inputs`` (judge key variables, the
spending cap, official files), ``run`` (every check of one config), ``commands`` (the CLI).
"""
