"""Routes of step workflows: definitions and executions."""
