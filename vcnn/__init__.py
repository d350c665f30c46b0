"""The learning side of vcnn (torch): clouds, frame-invariant networks, training, symmetry checks,
and trained networks as closures.

Imports `meshes` only (for MeshFields), never dolfinx, so it runs on machines without FEniCSx.
The public API is re-exported here (`__all__`); the modules behind it are loaded on first use,
so that `import vcnn.errors` stays cheap.
"""

import importlib

_API = {
    "VcnnError": "vcnn.errors",
    # clouds and features
    "Ellipse": "vcnn.clouds", "Ball": "vcnn.clouds", "KNearest": "vcnn.clouds", "NodeIndex": "vcnn.clouds", "build_clouds": "vcnn.clouds",
    "FeatureSpec": "vcnn.features",
    # networks
    "CloudNetConfig": "vcnn.nn", "CloudNet": "vcnn.nn", "NETWORKS": "vcnn.nn", "build_model": "vcnn.nn", "register": "vcnn.nn",
    # data and training
    "Case": "vcnn.data", "load_case": "vcnn.data", "CloudBatches": "vcnn.data", "GraphBatches": "vcnn.data", "feature_statistics": "vcnn.data",
    "TrainingConfig": "vcnn.train", "Trainer": "vcnn.train", "train": "vcnn.train",
    # checkpoints, inference, symmetry, closures
    "save": "vcnn.checkpoint", "load": "vcnn.checkpoint", "load_trained": "vcnn.checkpoint", "Trained": "vcnn.checkpoint",
    "predict_fields": "vcnn.inference", "relative_l2": "vcnn.inference",
    "check_field_model": "vcnn.symmetry", "check_cloud_model": "vcnn.symmetry", "moved": "vcnn.symmetry", "planar_rotation": "vcnn.symmetry",
    "NeuralClosure": "vcnn.closure", "closure_targets": "vcnn.closure", "check_device": "vcnn.devices",
    # whole meshes as torch-geometric graphs
    "to_pyg": "vcnn.graphs",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'vcnn' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__():
    return __all__
