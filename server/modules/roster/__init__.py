"""执法检查人员名录库: inspector availability, the conflict-of-interest register and recusal (回避)."""
