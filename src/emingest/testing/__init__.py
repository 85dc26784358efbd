"""Synthetic EM volumes and loopback replicas of the five archives, shipped like ``zarr.testing``.

Needs the ``testing`` extra (pyftpdlib, moto) for the FTP and S3 replicas, and pytest for
:mod:`emingest.testing.contract`, the tests every source (plug-ins too) subclasses.
"""
