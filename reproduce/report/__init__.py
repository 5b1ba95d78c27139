"""Reports: Table 1 beside the paper's numbers, and figures."""
