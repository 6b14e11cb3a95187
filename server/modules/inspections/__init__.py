"""检查任务: one assigned on-site inspection of one target by a team of at least two inspectors."""
