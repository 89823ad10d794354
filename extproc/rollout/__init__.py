"""Rollout and analysis: canary phases, observed traffic, the verdicts and the report."""
