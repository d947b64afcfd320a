"""Build the optional native accelerator of the read path (everything else is in pyproject.toml).

``optional=True``: a machine without a C compiler still installs lithair_lab, and
the read path falls back to pure Python (lithair_lab.formats.native warns once).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lithair_lab.formats._native",
            sources=["lithair_lab/formats/_native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
