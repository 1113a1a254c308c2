"""train_config.sparse_optimizer messages → row-sparse optimizers."""

import pytest
from google.protobuf import text_format

from easymatch.errors import ConfigError
from easymatch.protos import optimizer_pb2
from easymatch.training.learning_rate import ManualStepLR
from easymatch.training.sparse_optimizers import (
    RowSparseAdagrad,
    RowSparseAdam,
    RowSparseSGD,
    build_sparse_optimizer,
)


def parse(text: str) -> optimizer_pb2.SparseOptimizer:
    return text_format.Parse(text, optimizer_pb2.SparseOptimizer())


FIELD = "train_config.sparse_optimizer"


def test_build_sparse_optimizer_maps_each_kind():
    sgd = build_sparse_optimizer(
        parse("sgd_optimizer { lr: 0.5 } constant_learning_rate {}"), FIELD
    )
    assert isinstance(sgd, RowSparseSGD)
    assert float(sgd.learning_rate) == pytest.approx(0.5)

    adagrad = build_sparse_optimizer(
        parse(
            "adagrad_optimizer { lr: 0.1 initial_accumulator_value: 0.25 }"
            " manual_step_learning_rate {"
            "   schedule_sizes: 10 learning_rates: 0.01"
            " }"
        ),
        FIELD,
    )
    assert isinstance(adagrad, RowSparseAdagrad)
    assert adagrad.initial_accumulator_value == pytest.approx(0.25)
    assert isinstance(adagrad._learning_rate, ManualStepLR)

    adam = build_sparse_optimizer(
        parse("adam_optimizer { lr: 0.1 beta1: 0.5 beta2: 0.75 }"), FIELD
    )
    assert isinstance(adam, RowSparseAdam)
    assert (adam.beta_1, adam.beta_2) == (0.5, 0.75)


def test_build_sparse_optimizer_refuses_weight_decay():
    config = parse("adam_optimizer { lr: 0.1 weight_decay: 0.01 }")
    with pytest.raises(ConfigError) as error:
        build_sparse_optimizer(config, FIELD)
    assert str(error.value) == (
        "train_config.sparse_optimizer.adam_optimizer.weight_decay: "
        "not supported yet"
    )


def test_build_sparse_optimizer_needs_a_kind():
    with pytest.raises(ConfigError, match=f"{FIELD}: no optimizer set"):
        build_sparse_optimizer(parse("constant_learning_rate {}"), FIELD)
