"""The memory planner (``gazal plan``)."""
