"""With a negative sampler, exports index the sampler's item table."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from test_negatives_pipeline import sample_path, sampler_edits

from easymatch.config import load_pipeline_config
from easymatch.export.export_model import export
from easymatch.export.sampler_corpus import write_sampler_corpus
from easymatch.export.scann_index import ItemIndex
from easymatch.run_context import RunContext
from easymatch.training.loop import train_and_evaluate


@pytest.mark.slow
def test_export_indexes_every_item_of_the_sampler_table(taobao_data, tmp_path):
    name = "dssm_negative_sampler_v2"
    config = load_pipeline_config(
        sample_path(name),
        sampler_edits(
            name,
            taobao_data,
            tmp_path / "model",
            **{
                "train_config.num_steps": 2,
                "train_config.save_checkpoints_steps": 2,
                "eval_input_path": "",
            },
        ),
    )
    train_and_evaluate(config)
    run = RunContext(config)
    paths = export(run, None, str(tmp_path / "export"))
    index = ItemIndex.load(paths["item_index"])
    table_ids = [
        line.split("\t")[0]
        for line in (taobao_data / "item_table.txt")
        .read_text()
        .splitlines()[1:]
    ]
    assert sorted(map(str, index.ids)) == sorted(table_ids)

    corpus = pq.read_table(write_sampler_corpus(run, str(tmp_path)))
    # Typed like the training data, so the item tower gets int64 ids.
    train = pq.read_schema(taobao_data / "train.parquet")
    for column in corpus.column_names:
        assert corpus.schema.field(column).type == train.field(column).type
    assert np.isfinite(index.embeddings).all()
    # No eval rows: the index was tuned on perturbed items.
    assert index.info["tuning"]["queries"]["source"] == (
        "perturbed item embeddings"
    )
    # The retrieval model retrieves from the same items (an all-null
    # user as a tf.Example).
    retrieve = tf.saved_model.load(paths["retrieval"]).signatures["tf_example"]
    empty = tf.train.Example().SerializeToString()
    ids = retrieve(examples=tf.constant([empty]))["item_ids"].numpy()
    assert ids.shape == (1, min(100, len(table_ids)))
    assert set(map(str, ids[0])) <= set(table_ids)
