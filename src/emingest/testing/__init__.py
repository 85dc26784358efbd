"""Synthetic EM volumes and loopback replicas of the five archives, shipped like ``zarr.testing``.

Needs the ``testing`` extra (pyftpdlib, moto) for the FTP and S3 replicas, and pytest
(the ``test`` extra) for :mod:`emingest.testing.contract`, the tests every source (plug-ins
too) subclasses. The user install (``testing``) stays free of test tools on purpose: CI runs
the demo from it first, so a run-time import of a test-only module fails there.
"""
