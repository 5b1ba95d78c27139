"""The HTML report (``results/report.html``): Table 1 down to each judge's verdict, opened from disk."""
