"""Analysis: the bottleneck detector, targets from the annual goal, leading indicators and alerts."""
