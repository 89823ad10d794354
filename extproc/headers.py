"""The headers switchyard sets for Envoy's router; clients may never set them.

The Envoy renderer strips every header named here from incoming requests, so
one list keeps the two in step.
"""

ROUTE = "x-switchyard-route"
COHORT = "x-switchyard-cohort"
STICKY = "x-switchyard-sticky"
LABEL = "x-switchyard-label"
BACKEND = "x-switchyard-backend"
"""Response only: the cluster that answered (added by Envoy's route)."""

INTERNAL = (ROUTE, COHORT, STICKY, LABEL, BACKEND)

CANARY = "canary"
STABLE = "stable"
