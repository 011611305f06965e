"""Step workflows: user-composed durable workflows of tool steps (seeds 003 and 002)."""
