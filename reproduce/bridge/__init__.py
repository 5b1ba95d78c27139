"""The bridge from a current judge to a retired one: re-judge archived answers, compare, calibrate."""
