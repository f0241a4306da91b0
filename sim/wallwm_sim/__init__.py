"""wallwm_sim: MuJoCo tabletop-arm simulation behind ROS 2 topics.

Skeleton only: the simulation, task suite and expert land with the simulation issue.
"""
