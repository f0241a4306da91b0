"""wallwm_ros: ROS 2 nodes that translate between ROS messages and wallwm_core."""
