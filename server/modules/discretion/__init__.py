"""Discretion benchmarks (自由裁量基准): versioned data, a pure calculator, and recorded results."""
