"""Registers the built-in data sets (cub, coco, shapes) through ``harness_datasets``, like a third-party plugin.

Each AttnGAN-layout data set declares the archives ``harness fetch NAME --data-dir DIR`` downloads and unpacks
into DIR: the images from their publishers, the metadata (splits, class ids, captions) from AttnGAN's release on
Google Drive, for which no digest is published (fetched and unpacked, reported as unverified).
"""
from __future__ import annotations

from harness.data.coco import COCO, build_coco
from harness.data.cub import CUB, build_cub
from harness.data.shapes import build_shapes
from harness.contract.plugins import hookimpl
from harness.contract.types import DatasetInfo, Download

_DRIVE = "https://drive.google.com/uc?export=download&id="
CUB_DOWNLOADS = [
    # md5 97eceeb1… is published with the CaltechDATA record; the full sha256 and size as several public
    # data-set loaders state them
    Download("CUB_200_2011.tgz", ("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",),
             digest="sha256:0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081", size=1_150_585_339),
    # AttnGAN's birds metadata: birds/{train,test}/*.pickle, birds/captions.pickle, birds/text.zip
    Download("birds.zip", (f"{_DRIVE}1O_LtUP9sch09QH3s_EBAgLEctBQ5JBSJ",), strip="birds/", inner=("text.zip",)),
]
COCO_DOWNLOADS = [
    # AttnGAN's COCO metadata: coco/{train,test}/filenames.pickle, coco/captions.pickle, the captions' text zips
    Download("coco.zip", (f"{_DRIVE}1rSnbIGNDGZeHlsUlLdahj0RJ9oo6lgH9",), strip="coco/",
             inner=("train2014-text.zip", "val2014-text.zip")),
    # the md5 digests widely published for the COCO-2014 image archives, and their sizes (the server's
    # Content-Length in public download logs, the same in several public data-set scripts); DM-GAN merges both
    # into images/
    Download("train2014.zip", ("http://images.cocodataset.org/zips/train2014.zip",),
             digest="md5:0da8c0bd3d6becc4dcb32757491aca88", size=13_510_573_713, strip="train2014/", into="images"),
    Download("val2014.zip", ("http://images.cocodataset.org/zips/val2014.zip",),
             digest="md5:a3d79f5ed8d289b7a7554ce06a5782b3", size=6_645_013_297, strip="val2014/", into="images"),
]


@hookimpl
def harness_datasets() -> list[DatasetInfo]:
    return [
        DatasetInfo("cub", "CUB-200-2011 birds, AttnGAN layout (bbox crop, 10 captions per image)", build_cub,
                    layout=CUB.layout, downloads=list(CUB_DOWNLOADS)),
        DatasetInfo("coco", "COCO-2014, AttnGAN layout (5 captions per image, every image its own class)",
                    build_coco, layout=COCO.layout, downloads=list(COCO_DOWNLOADS)),
        DatasetInfo("shapes", "built-in synthetic scenes with compositional captions (no files needed)",
                    build_shapes, layout="(generated from data.shapes.*; no files)", needs_data_dir=False),
    ]
