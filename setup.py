"""The ament_python package ``wallwm``: installs wallwm_core and wallwm_ros.

Installed with pip (scripts/setup.sh) or by colcon on a ROS 2 machine; the console scripts are
what ``ros2 run wallwm <name>`` starts (setup.cfg puts them in lib/wallwm for colcon).
"""

from setuptools import find_packages, setup

PACKAGE_NAME = "wallwm"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=find_packages(include=["wallwm_core", "wallwm_core.*", "wallwm_ros", "wallwm_ros.*"]),
    package_data={
        "wallwm_core": [
            "configs/*.yaml",
            "checkpoints/*/*",
            "checkpoints/*/training/*",
            "checkpoints/*/training/init_from/*",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wallwm maintainers",
    maintainer_email="maintainers@wallwm.dev",
    description="WALL-WM world action model on ROS 2: core library and nodes.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = wallwm_ros.policy_node:main",
            "controller_node = wallwm_ros.controller_node:main",
            "sim_node = wallwm_ros.sim_node:main",
            "send_goal = wallwm_ros.send_goal:main",
            "demo = wallwm_ros.demo:main",
        ],
    },
)
