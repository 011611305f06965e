"""Activities of step workflows: the step tools and the records of executions."""
