"""双随机、一公开: sampling rules, annual plans and verifiable random draws."""
