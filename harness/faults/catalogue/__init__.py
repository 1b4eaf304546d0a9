"""One module per fault (or small family); discovered by harness.faults.registry."""
