"""Benchmarks of the fused op against PyTorch's convolutions: `xsep bench` (see __main__)."""
