"""The optional C part of dockzone: dnsserver._udpbatch (recvmmsg/sendmmsg for the UDP
loop, see dnsserver/udpio.py). Everything else is in pyproject.toml. optional=True: where
it cannot be built (no C compiler or Python headers, not Linux) the install goes on and the
DNS server reads one datagram per system call instead."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dnsserver._udpbatch",
            ["dnsserver/_udpbatch.c"],
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-missing-field-initializers",
                "-Wno-unused-parameter",
            ],
            optional=True,
        )
    ]
)
