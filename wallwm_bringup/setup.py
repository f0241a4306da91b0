"""The ament_python package ``wallwm_bringup``: launch files and node configuration."""

from glob import glob

from setuptools import setup

PACKAGE_NAME = "wallwm_bringup"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=[],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE_NAME}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE_NAME}/config/robots", glob("config/robots/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wallwm maintainers",
    maintainer_email="maintainers@wallwm.dev",
    description="Launch files and configuration for the wallwm nodes.",
    license="Apache-2.0",
)
