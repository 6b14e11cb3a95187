"""一公开 / 行政执法公示: the public side of random inspections (items, plans, results, draws)."""
