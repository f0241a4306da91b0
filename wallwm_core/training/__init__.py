"""Training the WALL-WM denoiser: batches, the flow-matching objective, optimisers."""
