"""Composes the verbs into jobs (the demo, recipes); verbs never import this package."""
