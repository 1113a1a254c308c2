"""easymatch: TorchEasyRec's match stack on TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="easymatch",
    version="0.1.0",
    description=(
        "Two-tower DSSM retrieval models trained from TorchEasyRec-style "
        "pipeline configs, exported as TF Serving SavedModels with ScaNN."
    ),
    packages=find_packages(include=["easymatch", "easymatch.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=[
        "tensorflow==2.20.0",
        "keras==3.15.1",
        "tensorflow-recommenders==0.7.7",
        "tf-keras==2.20.1",
        "scann==1.4.2",
        "protobuf>=6.31.1,<7",
        "numpy>=2,<3",
        "pyarrow>=15",
        "tensorflow-serving-api==2.20.0",
        # easymatch.serve: gRPC (TF Serving's API) and the REST server.
        "grpcio==1.85.3",
        "aiohttp==3.14.5",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6",
            # Pinned: the generated *_pb2.py files are compared byte for
            # byte with this protoc's output.
            "grpcio-tools==1.81.1",
            "ruff==0.17.6",
            # The reference tokenizer library: tokenize_feature's ids are
            # compared with its ids (tests/test_features_tokenize.py).
            "tokenizers==0.23.3",
        ],
    },
)
