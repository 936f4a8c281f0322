"""The plan/apply engine: state and its backends, fingerprints, planner, executor."""
