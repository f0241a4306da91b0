"""The ament_python package ``wallwm_sim``: the MuJoCo simulation of the wallwm tabletop arm."""

from setuptools import find_packages, setup

PACKAGE_NAME = "wallwm_sim"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=find_packages(include=["wallwm_sim", "wallwm_sim.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wallwm maintainers",
    maintainer_email="maintainers@wallwm.dev",
    description="MuJoCo tabletop-arm simulation for wallwm.",
    license="Apache-2.0",
    entry_points={"console_scripts": []},
)
