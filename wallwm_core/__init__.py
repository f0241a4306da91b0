"""wallwm_core: the ROS-free WALL-WM library: model, training objective, inference, checkpoints,
VLM, event planner, policies and the joint controller.

Nothing in this package imports rclpy or ROS message types; wallwm_ros translates.
"""
