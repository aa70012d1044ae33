"""The built-in metrics and the weight files they use (registered through the same hooks a plugin uses).

Metric ids: is, is_ft, fid, fid_tv, kid, rp, rp_real, clip_rp, clip_score, probe_acc,
probe_fid, probe_is; plus ``rp_ext`` (R-precision with a separately trained DAMSM, ``--rp-encoder``), beside
``rp`` in the table. Each factory is imported only when the metric is built (no torch-fidelity / CLIP import at
start-up).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

from harness.contract.plugins import hookimpl
from harness.contract.types import Download, MetricFormat, MetricInfo, MetricOption, WeightFile

if TYPE_CHECKING:  # type hints only
    from harness.evaluation.metrics.interface import EvalContext, StreamingMetric


def _lazy(module: str, function: str) -> Callable[[EvalContext], StreamingMetric]:
    def factory(ctx: EvalContext) -> StreamingMetric:
        return getattr(importlib.import_module(module), function)(ctx)

    factory.__qualname__ = f"{module}.{function}"
    return factory


_INC = "harness.evaluation.metrics.inception"
_RP = "harness.evaluation.metrics.r_precision"
_CLIP = "harness.evaluation.metrics.clip_score"
_PROBE = "harness.evaluation.metrics.shapes_probe"
INCEPTION_FID_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
CLIP_B32_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"

# How tables show each metric (the ids themselves stay in the CSV and JSON).
FORMATS = {
    "is": MetricFormat("IS"),
    "is_ft": MetricFormat("IS (fine-tuned)"),
    "fid": MetricFormat("FID"),
    "fid_tv": MetricFormat("FID (torchvision)"),
    "kid": MetricFormat("KID", unit="×10³", scale=1e3, latex_unit=r"$\times 10^{3}$"),
    "rp": MetricFormat("R-precision", unit="%"),
    "rp_real": MetricFormat("R-precision", unit="%"),
    "rp_ext": MetricFormat("R-precision (ext. DAMSM)", unit="%"),
    "clip_rp": MetricFormat("CLIP-R", unit="%"),
    "clip_score": MetricFormat("CLIPScore"),
    "probe_acc": MetricFormat("Probe acc.", unit="%", decimals=1),
    "probe_fid": MetricFormat("Probe FID"),
    "probe_is": MetricFormat("Probe IS"),
}


IS_FT_OPTIONS = [
    MetricOption("is_classifier", "fine-tuned classifier for is_ft (TorchScript or a torchvision inception_v3 "
                 "state dict)", metavar="FILE"),
    MetricOption("is_classes", "is_ft: the classifier's class count (e.g. 50 for CUB's test classes)", int,
                 metavar="N"),
    MetricOption("is_temperature", "is_ft: softmax temperature (IS*; default 1)", float, metavar="T"),
]
FID_STATS = MetricOption("fid_stats", "real statistics for fid_tv (pytorch-fid .npz)", metavar="FILE")
RP_ENCODER = MetricOption("rp_encoder", "score R-precision with a separately trained DAMSM (a run or a cache "
                          "directory)", metavar="RUN_OR_DIR")
CLIP_MODEL = MetricOption("clip_model", "clip_rp, clip_score: this CLIP model file instead of the registered "
                          "ViT-B/32 (unverified)", metavar="FILE")


@hookimpl
def harness_metrics() -> list[MetricInfo]:
    return [
        MetricInfo("is", "higher", "Inception Score, torch-fidelity TF-Inception (ImageNet), 10 splits",
                   ["inception_tf_fid"], _lazy(_INC, "make_is"), format=FORMATS["is"]),
        MetricInfo("is_ft", "higher", "Inception Score with a fine-tuned classifier (--is-classifier, "
                   "--is-classes, --is-temperature for IS*)", [], _lazy(_INC, "make_is_ft"),
                   format=FORMATS["is_ft"], options=IS_FT_OPTIONS),
        MetricInfo("fid", "lower", "FID, torch-fidelity TF-Inception pool3 vs the real test split",
                   ["inception_tf_fid"], _lazy(_INC, "make_fid"), format=FORMATS["fid"]),
        MetricInfo("fid_tv", "lower", "FID, torchvision Inception-v3 + pytorch-fid preprocessing (the published "
                   "DM-GAN/DF-GAN/TISE variant); --fid-stats NPZ for published statistics",
                   ["damsm_inception_v3"], _lazy(_INC, "make_fid_tv"), format=FORMATS["fid_tv"], options=[FID_STATS]),
        MetricInfo("kid", "lower", "KID, torch-fidelity TF-Inception pool3, 100 subsets",
                   ["inception_tf_fid"], _lazy(_INC, "make_kid"), format=FORMATS["kid"]),
        MetricInfo("rp", "higher", "R-precision % (DAMSM of training, 1 true + 99 other-class captions, R=1, "
                   "10 folds)", [], _lazy(_RP, "make_rp"), format=FORMATS["rp"]),
        MetricInfo("rp_real", "higher", "R-precision % of the real test images (reference row)", [],
                   _lazy(_RP, "make_rp_real"), format=FORMATS["rp_real"]),
        MetricInfo("rp_ext", "higher", "R-precision % with a separately trained DAMSM (--rp-encoder)", [],
                   _lazy(_RP, "make_rp_ext"), format=FORMATS["rp_ext"], options=[RP_ENCODER]),
        MetricInfo("clip_rp", "higher", "CLIP-R-precision % (openai-clip ViT-B/32 zero-shot, 1 true + 99 "
                   "other-class captions)", ["clip_vit_b32"], _lazy(_CLIP, "make_clip_rp"),
                   format=FORMATS["clip_rp"], options=[CLIP_MODEL]),
        MetricInfo("clip_score", "higher", "CLIPScore, 100·max(cos, 0) (openai-clip ViT-B/32)", ["clip_vit_b32"],
                   _lazy(_CLIP, "make_clip_score"), format=FORMATS["clip_score"], options=[CLIP_MODEL]),
        MetricInfo("probe_acc", "higher", "shapes probe (trained here): mean per-attribute accuracy % of "
                   "generated images for their captions", [], _lazy(_PROBE, "make_probe_acc"), ["shapes"],
                   format=FORMATS["probe_acc"]),
        MetricInfo("probe_fid", "lower", "shapes probe (trained here): FID in the probe's feature space", [],
                   _lazy(_PROBE, "make_probe_fid"), ["shapes"], format=FORMATS["probe_fid"]),
        MetricInfo("probe_is", "higher", "shapes probe (trained here): IS over the probe's joint (colour, shape) "
                   "prediction", [], _lazy(_PROBE, "make_probe_is"), ["shapes"], format=FORMATS["probe_is"]),
    ]


@hookimpl
def harness_weight_files() -> list[WeightFile]:
    # DAMSM's (and fid_tv's) torchvision Inception, "damsm_inception_v3", is registered by harness.train.pretrain.
    return [
        WeightFile(
            name="inception_tf_fid",
            purpose="IS, FID, KID: the TF inception-2015-12-05 graph ported to PyTorch (torch-fidelity / pytorch-fid)",
            filenames=["weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth"],
            # the full sha256 as stated by several independent public projects that pin the file
            # (torch-fidelity's weights-inception-… and pytorch-fid's pt_inception-… are the same bytes);
            # the releases themselves publish only the 8-hex prefix in the name.
            check="sha256", digest=INCEPTION_FID_SHA256,
            source="github.com/toshas/torch-fidelity/releases/download/v0.2.0/ or "
                   "github.com/mseitzer/pytorch-fid/releases/download/fid_weights/",
            label="Inception",
            downloads=[Download(
                "weights-inception-2015-12-05-6726825d.pth",
                ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth",
                 "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth"),
                digest=f"sha256:{INCEPTION_FID_SHA256}")]),
        WeightFile(
            name="clip_vit_b32",
            purpose="CLIP-R-precision and CLIPScore: OpenAI CLIP ViT-B/32",
            filenames=["ViT-B-32.pt"],
            # the sha256 is the folder of OpenAI's own address, and openai-clip checks the file against it
            check="sha256", digest=CLIP_B32_SHA256,
            source=f"openaipublic.azureedge.net/clip/models/{CLIP_B32_SHA256}/ViT-B-32.pt",
            downloads=[Download("ViT-B-32.pt",
                                (f"https://openaipublic.azureedge.net/clip/models/{CLIP_B32_SHA256}/ViT-B-32.pt",),
                                digest=f"sha256:{CLIP_B32_SHA256}")],
            label="CLIP ViT-B/32"),
    ]
