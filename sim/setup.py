"""The ament_python package ``wallwm_sim``: the MuJoCo simulation of the wallwm tabletop arm.

The arm URDF ships twice: as package data (``wallwm_sim.description.urdf_path()``) and in the
share directory (``$(find-pkg-share wallwm_sim)/description/wallwm_arm.urdf``) for ROS users.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "wallwm_sim"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=find_packages(include=["wallwm_sim", "wallwm_sim.*"]),
    package_data={PACKAGE_NAME: ["description/*.urdf"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/description", glob(f"{PACKAGE_NAME}/description/*.urdf")),
    ],
    install_requires=["setuptools"],
    # The URDF is read from the installed package directory.
    zip_safe=False,
    maintainer="wallwm maintainers",
    maintainer_email="maintainers@wallwm.dev",
    description="MuJoCo tabletop-arm simulation for wallwm.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "generate_demos = wallwm_sim.generate_demos:main",
            "evaluate = wallwm_sim.evaluate:main",
        ]
    },
)
