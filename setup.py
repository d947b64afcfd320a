"""Build the optional native accelerators (everything else is in pyproject.toml).

``_native``: the read path's line split and CRC check. ``_encode``: the engine's
append encoder (envelope JSON, CRC frame, SHA-256 chain, dedup digest).
``_shapes``: the payload decoder's per-row JSON shape (which keys, which value
types), so the schema is inferred from one row per shape instead of every row.
``optional=True``: a machine without a C compiler still installs lithair_lab, and
each falls back to pure Python with the same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lithair_lab.formats._native",
            sources=["lithair_lab/formats/_native.c"],
            extra_compile_args=["-O3", "-pthread"],  # it splits a chunk across threads
            extra_link_args=["-pthread"],
            optional=True,
        ),
        Extension(
            "lithair_lab.formats._encode",
            sources=["lithair_lab/formats/_encode.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "lithair_lab.frames._shapes",
            sources=["lithair_lab/frames/_shapes.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
