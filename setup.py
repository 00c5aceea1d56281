# Kept for editable installs with the setuptools<82 pinned by the OpenMMLab stack (PEP 660 needs
# setuptools>=64, and openmim's dependency pins an older one). Metadata lives in setup.cfg.
from setuptools import setup

setup()
