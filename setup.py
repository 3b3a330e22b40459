"""Package discovery: every package under ``autoprune/``, ``envs/`` and ``agents/``, found, never listed.

``envs/`` and ``agents/`` install as ``autoprune.envs`` / ``autoprune.agents`` (``package-dir`` in
pyproject.toml), so their subpackages are discovered in their folders and renamed.
"""

from setuptools import find_packages, setup

ALIASES = {"autoprune.envs": "envs", "autoprune.agents": "agents"}

packages = find_packages(include=["autoprune", "autoprune.*"])
for alias, folder in ALIASES.items():
    packages += [alias, *(f"{alias}.{sub}" for sub in find_packages(folder))]

setup(packages=packages)
