"""Live platform state in Redis: admission counters, agent presence, their reconciliation.

Every key of an account carries the account's hash tag (``{acc_…}``), so one account's state
lives in one Redis Cluster slot and its scripts stay atomic on a cluster. The decisions
themselves are pure functions in ``control.core``; these modules only store and fetch.
"""
