"""NAS-Bench-201 / NAS-Bench-101 tools: the embedded table, its NNI space, the simulator and NNI-schema databases."""
