"""sipio control plane: the decision core, its stores and the operator-facing API."""
