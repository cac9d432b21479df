"""Deployment checks and formats: ONNX export (:mod:`csipose.deploy.export`) and
the parity of the Rust runtimes with torch (:mod:`csipose.deploy.parity`).
These import torch; the runtimes themselves (:mod:`csipose.runtime`) do not."""
