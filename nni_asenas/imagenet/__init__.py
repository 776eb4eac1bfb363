"""ImageNet: the MobileNet-like space (decisions, exact counters, network, NNI space) and the training pieces."""
