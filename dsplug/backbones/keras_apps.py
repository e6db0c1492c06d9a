"""The 13 built-in ``tf_keras.applications`` backbones, each a :class:`KerasApplicationBackbone`
whose facts live in :data:`SPECS` (input size, preprocessing, minimum size, notop weight file).

They are registered under the ``dsplug.backbones`` entry-point group in dsplug's own
``pyproject.toml`` (``vgg16``, ``densenet121``, ...), exactly as a third-party backbone would be.

The weight file names, URLs and MD5 digests are those of ``tf_keras.applications`` 2.21 for
``include_top=False``; a test checks them against the Keras source.

Examples
--------
>>> from dsplug.backbones.keras_apps import DenseNet121
>>> DenseNet121.input_size, DenseNet121.spec.preprocessing
((224, 224), 'torch')
"""

from __future__ import annotations

import tf_keras

from dsplug.plugin import KerasWeights
from dsplug.backbones.base import KerasApplicationBackbone, KerasAppSpec

__all__ = [
    "SPECS",
    "VGG16",
    "VGG19",
    "DenseNet121",
    "DenseNet169",
    "DenseNet201",
    "InceptionResNetV2",
    "InceptionV3",
    "MobileNet",
    "MobileNetV2",
    "NASNetLarge",
    "NASNetMobile",
    "ResNet50",
    "Xception",
]

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _notop(folder: str, file_name: str, md5: str | None) -> KerasWeights:
    return KerasWeights(file_name=file_name, url=_BASE + folder + "/" + file_name, md5=md5)


#: Pretrained facts per entry-point name.
SPECS: dict[str, KerasAppSpec] = {
    "vgg16": KerasAppSpec(
        constructor=tf_keras.applications.VGG16,
        input_size=224,
        preprocessing="caffe",
        min_input_size=32,
        weights=(
            _notop(
                "vgg16",
                "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "6d6bbae143d832006294945121d1f1fc",
            ),
        ),
    ),
    "vgg19": KerasAppSpec(
        constructor=tf_keras.applications.VGG19,
        input_size=224,
        preprocessing="caffe",
        min_input_size=32,
        weights=(
            _notop(
                "vgg19",
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "253f8cb515780f3b799900260a226db6",
            ),
        ),
    ),
    "resnet50": KerasAppSpec(
        constructor=tf_keras.applications.ResNet50,
        input_size=224,
        preprocessing="caffe",
        min_input_size=32,
        weights=(
            _notop(
                "resnet",
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "4d473c1dd8becc155b73f8504c6f6626",
            ),
        ),
    ),
    "xception": KerasAppSpec(
        constructor=tf_keras.applications.Xception,
        input_size=299,
        preprocessing="tf",
        min_input_size=71,
        weights=(
            _notop(
                "xception",
                "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "b0042744bf5b25fce3cb969f33bebb97",
            ),
        ),
    ),
    "inception_v3": KerasAppSpec(
        constructor=tf_keras.applications.InceptionV3,
        input_size=299,
        preprocessing="tf",
        min_input_size=75,
        weights=(
            _notop(
                "inception_v3",
                "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "bcbd6486424b2319ff4ef7d526e38f63",
            ),
        ),
    ),
    "densenet121": KerasAppSpec(
        constructor=tf_keras.applications.DenseNet121,
        input_size=224,
        preprocessing="torch",
        min_input_size=32,
        weights=(
            _notop(
                "densenet",
                "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "30ee3e1110167f948a6b9946edeeb738",
            ),
        ),
    ),
    "densenet169": KerasAppSpec(
        constructor=tf_keras.applications.DenseNet169,
        input_size=224,
        preprocessing="torch",
        min_input_size=32,
        weights=(
            _notop(
                "densenet",
                "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "b8c4d4c20dd625c148057b9ff1c1176b",
            ),
        ),
    ),
    "densenet201": KerasAppSpec(
        constructor=tf_keras.applications.DenseNet201,
        input_size=224,
        preprocessing="torch",
        min_input_size=32,
        weights=(
            _notop(
                "densenet",
                "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "c13680b51ded0fb44dff2d8f86ac8bb1",
            ),
        ),
    ),
    # MobileNet: one ImageNet file per input size; Keras uses the 224 one for other sizes.
    "mobilenet": KerasAppSpec(
        constructor=tf_keras.applications.MobileNet,
        input_size=224,
        preprocessing="tf",
        min_input_size=32,
        weights=tuple(
            KerasWeights(
                file_name=f"mobilenet_1_0_{rows}_tf_no_top.h5",
                url=f"{_BASE}mobilenet/mobilenet_1_0_{rows}_tf_no_top.h5",
                rows=rows,
            )
            for rows in (128, 160, 192, 224)
        ),
    ),
    "mobilenet_v2": KerasAppSpec(
        constructor=tf_keras.applications.MobileNetV2,
        input_size=224,
        preprocessing="tf",
        min_input_size=32,
        weights=tuple(
            KerasWeights(
                file_name=f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
                url=(
                    f"{_BASE}mobilenet_v2/"
                    f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
                ),
                rows=rows,
            )
            for rows in (96, 128, 160, 192, 224)
        ),
    ),
    # NASNet: Keras caches the file under another name than the URL's; both are accepted.
    "nasnet_large": KerasAppSpec(
        constructor=tf_keras.applications.NASNetLarge,
        input_size=331,
        preprocessing="tf",
        min_input_size=32,
        weights=(
            KerasWeights(
                file_name="nasnet_large_no_top.h5",
                url=_BASE + "nasnet/NASNet-large-no-top.h5",
                md5="d81d89dc07e6e56530c4e77faddd61b5",
            ),
        ),
    ),
    "nasnet_mobile": KerasAppSpec(
        constructor=tf_keras.applications.NASNetMobile,
        input_size=224,
        preprocessing="tf",
        min_input_size=32,
        weights=(
            KerasWeights(
                file_name="nasnet_mobile_no_top.h5",
                url=_BASE + "nasnet/NASNet-mobile-no-top.h5",
                md5="1ed92395b5b598bdda52abe5c0dbfd63",
            ),
        ),
    ),
    "inception_resnet_v2": KerasAppSpec(
        constructor=tf_keras.applications.InceptionResNetV2,
        input_size=299,
        preprocessing="tf",
        min_input_size=75,
        weights=(
            _notop(
                "inception_resnet_v2",
                "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "d19885ff4a710c122648d3b5c3b684e4",
            ),
        ),
    ),
}


class VGG16(KerasApplicationBackbone):
    """VGG-16 (Simonyan & Zisserman 2015): 224 px, caffe preprocessing, 512 channels."""

    spec = SPECS["vgg16"]


class VGG19(KerasApplicationBackbone):
    """VGG-19 (Simonyan & Zisserman 2015): 224 px, caffe preprocessing, 512 channels."""

    spec = SPECS["vgg19"]


class ResNet50(KerasApplicationBackbone):
    """ResNet-50 (He et al. 2016): 224 px, caffe preprocessing, 2048 channels."""

    spec = SPECS["resnet50"]


class Xception(KerasApplicationBackbone):
    """Xception (Chollet 2017): 299 px, tf preprocessing, 2048 channels."""

    spec = SPECS["xception"]


class InceptionV3(KerasApplicationBackbone):
    """Inception-v3 (Szegedy et al. 2016): 299 px, tf preprocessing, 2048 channels."""

    spec = SPECS["inception_v3"]


class DenseNet121(KerasApplicationBackbone):
    """DenseNet-121 (Huang et al. 2017), DeepSpectrumLite's default: 224 px, torch
    preprocessing, 1024 channels."""

    spec = SPECS["densenet121"]


class DenseNet169(KerasApplicationBackbone):
    """DenseNet-169 (Huang et al. 2017): 224 px, torch preprocessing, 1664 channels."""

    spec = SPECS["densenet169"]


class DenseNet201(KerasApplicationBackbone):
    """DenseNet-201 (Huang et al. 2017): 224 px, torch preprocessing, 1920 channels."""

    spec = SPECS["densenet201"]


class MobileNet(KerasApplicationBackbone):
    """MobileNet v1, alpha 1.0 (Howard et al. 2017): 224 px, tf preprocessing, 1024 channels."""

    spec = SPECS["mobilenet"]


class MobileNetV2(KerasApplicationBackbone):
    """MobileNet v2, alpha 1.0 (Sandler et al. 2018): 224 px, tf preprocessing, 1280 channels."""

    spec = SPECS["mobilenet_v2"]


class NASNetLarge(KerasApplicationBackbone):
    """NASNet-A Large (Zoph et al. 2018): 331 px, tf preprocessing, 4032 channels."""

    spec = SPECS["nasnet_large"]


class NASNetMobile(KerasApplicationBackbone):
    """NASNet-A Mobile (Zoph et al. 2018): 224 px, tf preprocessing, 1056 channels."""

    spec = SPECS["nasnet_mobile"]


class InceptionResNetV2(KerasApplicationBackbone):
    """Inception-ResNet-v2 (Szegedy et al. 2017): 299 px, tf preprocessing, 1536 channels."""

    spec = SPECS["inception_resnet_v2"]
