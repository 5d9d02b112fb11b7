"""Domain-free plumbing shared by the entry points and the domains."""
