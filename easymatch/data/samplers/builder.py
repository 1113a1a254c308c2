"""The sampler of ``data_config``'s ``sampler`` oneof, tables loaded."""

from __future__ import annotations

import logging

import numpy as np

from easymatch.data.samplers.edges import check_user_table, read_edge_table
from easymatch.data.samplers.hard_negative_sampler import (
    HardNegativeSampler,
    HardNegativeSamplerV2,
)
from easymatch.data.samplers.negative_sampler import NegativeSampler, Sampler
from easymatch.data.samplers.negative_sampler_v2 import NegativeSamplerV2
from easymatch.data.samplers.tables import read_item_table
from easymatch.errors import ConfigError

logger = logging.getLogger(__name__)


def build_sampler(config, training: bool, seed: int = 0) -> Sampler | None:
    """The configured sampler for training or eval; None without one.

    ``config`` is an EasyRecConfig; ``seed`` seeds its draws (the run seed
    for training, training/run_seed.py).
    """
    data = config.data_config
    kind = data.WhichOneof("sampler")
    if kind is None:
        return None
    sampler = getattr(data, kind)
    where = f"data_config.{kind}"
    delimiter = "\t"
    if sampler.HasField("field_delimiter"):
        delimiter = sampler.field_delimiter
        if len(delimiter) != 1:
            raise ConfigError(
                f"{where}.field_delimiter: {delimiter!r} must be one character"
            )
    num_sample, field = num_sample_for(sampler, training, where)
    if num_sample == 0:
        raise ConfigError(f"{where}.num_sample: must be > 0")
    item_path = (
        sampler.input_path
        if kind == "negative_sampler"
        else sampler.item_input_path
    )
    items = read_item_table(
        item_path,
        list(sampler.attr_fields),
        sampler.attr_delimiter,
        delimiter,
    )
    if num_sample > len(items):
        raise ConfigError(
            f"{where}.{field}: {num_sample} exceeds the {len(items)} items "
            f"of {item_path}"
        )
    if kind == "negative_sampler":
        return NegativeSampler(items, num_sample, sampler.item_id_field, seed)
    # Unset: all of a user's hard negatives, as GraphLearn's "full"
    # strategy in TorchEasyRec ignores the count.
    num_hard = getattr(sampler, "num_hard_sample", 0) or np.iinfo(np.int64).max
    check_user_table(sampler.user_input_path, delimiter)
    ids = (sampler.item_id_field, sampler.user_id_field)
    if kind == "hard_negative_sampler":
        return HardNegativeSampler(
            items,
            num_sample,
            *ids,
            read_edge_table(
                sampler.hard_neg_edge_input_path, delimiter, items, True
            ),
            num_hard,
            seed,
        )
    pos_path = sampler.pos_edge_input_path
    pos_edges = read_edge_table(pos_path, delimiter, items, False)
    if kind == "negative_sampler_v2":
        return NegativeSamplerV2(
            items, num_sample, *ids, pos_edges, pos_path, seed
        )
    return HardNegativeSamplerV2(
        items,
        num_sample,
        *ids,
        pos_edges,
        pos_path,
        read_edge_table(
            sampler.hard_neg_edge_input_path, delimiter, items, True
        ),
        num_hard,
        seed,
    )


def num_sample_for(sampler, training: bool, where: str) -> tuple[int, str]:
    """Negatives per batch and the field they come from.

    Eval uses ``num_eval_sample`` only when set and non-zero: an explicit 0
    would leave eval without negatives (TorchEasyRec), so it means
    ``num_sample`` here (SPEC §6).
    """
    if training or not sampler.HasField("num_eval_sample"):
        return sampler.num_sample, "num_sample"
    if sampler.num_eval_sample == 0:
        logger.warning(
            "%s.num_eval_sample: 0 means num_sample (%d) for eval",
            where,
            sampler.num_sample,
        )
        return sampler.num_sample, "num_sample"
    return sampler.num_eval_sample, "num_eval_sample"
