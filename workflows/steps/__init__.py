"""Step workflows: the interpreter of user-composed JSON workflows."""
