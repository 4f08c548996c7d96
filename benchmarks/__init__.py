"""Our engine against Captum and Quantus on the same inputs and device (`python -m benchmarks`)."""
