"""The score stage: one model's judgments scored the way the benchmark's official tool scores them."""
