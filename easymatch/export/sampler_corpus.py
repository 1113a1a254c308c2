"""The configured sampler's item table as an item corpus for the index.

When a model trains with a negative sampler, its item table is the item
corpus users retrieve from, so exports index it without --item_input_path.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from easymatch.data.samplers.tables import read_item_table
from easymatch.export.input_schema import training_types
from easymatch.run_context import RunContext


def sampler_item_table(config) -> str | None:
    """Path of the sampler's item table, or None without a sampler."""
    data = config.data_config
    kind = data.WhichOneof("sampler")
    if kind is None:
        return None
    sampler = getattr(data, kind)
    if kind == "negative_sampler":
        return sampler.input_path
    return sampler.item_input_path


def write_sampler_corpus(run: RunContext, directory: str) -> str | None:
    """Writes the item table's attrs as typed columns to a Parquet file.

    Columns take the training data's Arrow types (as recorded in
    model_dir), so the exported item
    tower receives what it was traced for. Returns the file, or None.
    """
    config = run.config
    path = sampler_item_table(config)
    if path is None:
        return None
    data = config.data_config
    sampler = getattr(data, data.WhichOneof("sampler"))
    delimiter = (
        sampler.field_delimiter if sampler.HasField("field_delimiter") else "\t"
    )
    items = read_item_table(
        path, list(sampler.attr_fields), sampler.attr_delimiter, delimiter
    )
    types = training_types(run)
    columns = {
        name: _typed(items.attrs[name].values, types.get(name))
        for name in sampler.attr_fields
    }
    if sampler.item_id_field not in columns:
        columns[sampler.item_id_field] = _typed(
            items.ids.values, types.get(sampler.item_id_field)
        )
    corpus = os.path.join(directory, "sampler_items.parquet")
    pq.write_table(pa.table(columns), corpus)
    return corpus


def _typed(values, arrow_type: pa.DataType | None) -> pa.Array:
    text = pa.array(list(values), pa.binary()).cast(pa.utf8())
    if arrow_type is None or pa.types.is_string(arrow_type):
        return text
    # An empty attr is a null, as an empty cell is in the training data.
    return pc.cast(pc.if_else(pc.equal(text, ""), None, text), arrow_type)
