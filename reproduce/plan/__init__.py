"""``reproduce plan``: what a preset will cost before anything runs (jobs, GPU-hours, memory, disk, judge
requests, tokens and dollars, what is already cached), and afterwards how the run compared.

Modules: ``assumptions`` (every stated default, with where it comes from), ``sizes`` (model parameters,
memory and disk), ``figures`` (the GPU benchmark's figures file), ``gpu`` (training and generation GPU
time), ``judging`` (judge jobs, requests, tokens, dollars, cache hits), ``build`` (the plan of one config),
``render`` (plan.md), ``compare`` (plan against a finished run), ``commands`` (the CLI). Pricing requests
lives with the judges (``reproduce/judges/pricing.py``), which the plan uses, beside the ``judging.max_usd``
cost guard (``guard.py``, ``ledger.py``).
"""
