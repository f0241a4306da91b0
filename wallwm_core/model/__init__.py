"""WALL-WM model components (ROS-free, plain PyTorch)."""
