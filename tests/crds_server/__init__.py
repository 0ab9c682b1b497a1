"""A CRDS server test double: a synthetic store (store.py) served over the real protocol."""
