"""The simulated closed loop: in-process bringup of sim, policy and controller nodes, episodes,
the main job (``run_sim``) and the ROS evaluation (``evaluate_ros``)."""
