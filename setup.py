"""Packages of the wheel: every package under inspector/ (a new runtime package ships without editing any list),
and `rules/` (data users read and edit, at the top of the repository) shipped as `inspector.rules`, so a
non-editable install finds it with importlib.resources. Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["inspector", "inspector.*"]) + ["inspector.rules"],
    package_dir={"inspector": "inspector", "inspector.rules": "rules"},
)
