"""Guest data sources: each one only reads and returns InstanceData; the agent does the writing."""
