"""The harness's version (``harness.__version__``) and the versions of the libraries it runs on, in a module of its
own so that any layer can name them without importing the package root (which re-exports the lazily imported Python
API)."""
__version__ = "0.1.0"


def library_versions() -> dict[str, str]:
    """The versions of the harness and the libraries its numbers depend on, as the imported modules report them
    (``__version__``, e.g. torch's ``2.4.1+cu121`` with its build tag): ``harness``, ``torch``, ``torchvision``,
    ``numpy``, and ``torch_fidelity`` when it is installed. Recorded in every record's protocol and in ``run.json``."""
    import numpy
    import torch
    import torchvision

    out = {"harness": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
           "numpy": numpy.__version__}
    try:
        import torch_fidelity
    except ImportError:  # optional: IS/FID/KID only
        return out
    out["torch_fidelity"] = torch_fidelity.__version__
    return out
