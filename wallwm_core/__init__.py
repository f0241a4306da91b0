"""wallwm_core: the ROS-free WALL-WM library (action chunks, policies, and later the model).

Nothing in this package imports rclpy or ROS message types; wallwm_ros translates.
"""
