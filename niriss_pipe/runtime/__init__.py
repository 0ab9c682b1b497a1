"""In-image helpers: synthetic data, an offline pipeline self-test and a fast CRDS cache check."""
