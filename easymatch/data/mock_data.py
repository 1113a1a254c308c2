"""Mock data for any pipeline config, as TorchEasyRec's tests make it.

`create_mock_data` reads a config's feature configs and writes, into one
directory: train.parquet and eval.parquet with every input column the
features read (tzrec/tests/utils.py `create_mock_data`), the sampler
tables its sampler needs in TorchEasyRec's formats (SPEC §2.6), tokenizer
files the config names but that do not exist, and pipeline.config: the
config with every path pointing into the directory. One seed gives
byte-identical files.

Rows pair a user of a user catalogue with an item of an item catalogue,
so an item's columns are the same in every row and in the sampler's item
table; sequences hold catalogue items (with their attributes).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from google.protobuf.message import Message

from easymatch.config import iter_features, sampler_config
from easymatch.config.features import FeatureInfo
from easymatch.config.loader import parse_pipeline_config, save_pipeline_config
from easymatch.config.validate_features import id_table_size
from easymatch.features.tokenizer_file import WORDS, write_mock_tokenizer
from easymatch.protos import data_pb2, feature_pb2, pipeline_pb2

# TorchEasyRec's mock ids without a size rule (hash buckets) stay below this.
_HASH_IDS = 10000


def create_mock_data(
    pipeline_config_path: str,
    output_dir: str,
    num_rows: int | None = None,
    num_steps: int | None = None,
    seed: int = 0,
) -> str:
    """Writes the data and output_dir/pipeline.config; returns its path."""
    config = parse_pipeline_config(pipeline_config_path)
    os.makedirs(output_dir, exist_ok=True)
    out = os.path.abspath(output_dir)
    rng = np.random.default_rng(seed)
    data = config.data_config
    data.dataset_type = data_pb2.ParquetDataset
    rows = num_rows or 4 * data.batch_size
    _write_tokenizers(config, out)
    mock = _Mock(config, rng, rows)
    for split in ("train", "eval"):
        pq.write_table(mock.rows(rows), os.path.join(out, f"{split}.parquet"))
    config.train_input_path = os.path.join(out, "train.parquet")
    config.eval_input_path = os.path.join(out, "eval.parquet")
    config.model_dir = os.path.join(out, "model")
    mock.write_sampler_tables(out)
    if num_steps:
        config.train_config.num_steps = num_steps
        config.train_config.ClearField("num_epochs")
    path = os.path.join(out, "pipeline.config")
    save_pipeline_config(config, path)
    return path


def _write_tokenizers(config: pipeline_pb2.EasyRecConfig, out: str) -> None:
    for fc in config.feature_configs:
        if fc.WhichOneof("feature") != "tokenize_feature":
            continue
        feature = fc.tokenize_feature
        path = os.path.join(feature.asset_dir, feature.vocab_file)
        if not os.path.exists(path):
            path = os.path.join(out, os.path.normpath(path).lstrip("./"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_mock_tokenizer(path)
        feature.vocab_file = os.path.abspath(path)
        feature.ClearField("asset_dir")


class _Mock:
    def __init__(
        self, config: pipeline_pb2.EasyRecConfig, rng, num_rows: int
    ) -> None:
        self.rng = rng
        data = config.data_config
        self.encoded = data.fg_mode == data_pb2.FG_NONE
        self.multival_sep = data.fg_encoded_multival_sep
        self.labels = [*data.label_fields]
        self.weights = [*data.sample_weight_fields]
        self.sampler = sampler_config(data)
        infos = list(iter_features(config))
        plain = [i for i in infos if not i.sequence_name]
        self.sequences: dict[str, list[FeatureInfo]] = {}
        for info in infos:
            if info.sequence_name:
                self.sequences.setdefault(info.sequence_name, []).append(info)
        item_cols = {i.input_columns[0]: i for i in plain if i.side == "item"}
        user_cols = {i.input_columns[0]: i for i in plain if i.side != "item"}
        self.item_id = self._id_column(item_cols, "item")
        self.user_id = self._id_column(user_cols, "user")
        num_sample = self.sampler.num_sample if self.sampler else 0
        self.num_items = max(2 * num_sample, num_rows // 8, 64)
        self.num_users = max(num_rows // 4, 64)
        self.items = self._catalogue(item_cols, self.item_id, self.num_items)
        self.users = self._catalogue(user_cols, self.user_id, self.num_users)
        self.num_items = len(self.items[self.item_id])
        self.num_users = len(self.users[self.user_id])
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def _id_column(self, columns: dict[str, FeatureInfo], side: str) -> str:
        field = f"{side}_id_field"
        if self.sampler is not None and hasattr(self.sampler, field):
            return getattr(self.sampler, field)
        for column, info in columns.items():
            if info.is_id:
                return column
        return f"{side}_id"

    def _catalogue(self, columns, id_column: str, size: int) -> dict:
        """Column → values of `size` entities with distinct ids."""
        info = columns.get(id_column)
        proto = info.proto if info is not None and info.is_id else None
        if proto is not None and (proto.vocab_list or proto.vocab_dict):
            vocab = list(proto.vocab_list) or sorted(proto.vocab_dict)
            ids = self.rng.permutation(np.array(vocab, dtype=object))
        else:
            high = (proto and id_table_size(proto)) or 2**40
            ids = self.rng.choice(high, size=min(size, high), replace=False)
        ids = ids[:size]
        table = {
            column: self._values(i.proto, len(ids), self.encoded)
            for column, i in columns.items()
        }
        table[id_column] = ids
        return table

    def _values(self, proto: Message, size: int, encoded: bool) -> np.ndarray:
        rng = self.rng
        if isinstance(proto, feature_pb2.TokenizeFeature):
            lengths = rng.integers(1, 6, size)
            words = rng.choice(WORDS, int(lengths.sum()))
            ends = np.cumsum(lengths)
            return np.array(
                [
                    " ".join(words[e - n : e])
                    for e, n in zip(ends, lengths, strict=True)
                ],
                dtype=object,
            )
        if isinstance(proto, feature_pb2.IdFeature):
            if proto.vocab_list:
                return rng.choice(list(proto.vocab_list), size).astype(object)
            if proto.vocab_dict:
                return rng.choice(sorted(proto.vocab_dict), size).astype(object)
            high = proto.num_buckets or _HASH_IDS
            return rng.integers(0, high, size, dtype=np.int64)
        if encoded and proto.boundaries:
            return rng.integers(0, len(proto.boundaries) + 1, size)
        if proto.value_dim <= 1:
            return rng.random(size, dtype=np.float32)
        sep = self.multival_sep if encoded else proto.separator
        values = rng.random((size, proto.value_dim), dtype=np.float32)
        return np.array(
            [sep.join(str(v) for v in row) for row in values], dtype=object
        )

    def rows(self, num_rows: int) -> pa.Table:
        rng = self.rng
        users = rng.integers(0, self.num_users, num_rows)
        items = rng.integers(0, self.num_items, num_rows)
        self.pairs.append((users, items))
        columns = {k: v[users] for k, v in self.users.items()}
        columns.update({k: v[items] for k, v in self.items.items()})
        for infos in self.sequences.values():
            columns.update(self._sequence(infos, num_rows))
        # Every row of match data is a clicked pair, a positive to the
        # softmax loss; TorchEasyRec's random 0/1 labels serve rank models.
        for label in self.labels:
            columns[label] = np.ones(num_rows, dtype=np.int64)
        for weight in self.weights:
            columns[weight] = np.ones(num_rows, dtype=np.float32)
        return pa.table({k: pa.array(v) for k, v in columns.items()})

    def _sequence(self, infos: list[FeatureInfo], num_rows: int) -> dict:
        length = max(infos[0].sequence_length, 1)
        lengths = self.rng.integers(1, length + 1, num_rows)
        picks = self.rng.integers(0, self.num_items, int(lengths.sum()))
        ends = np.cumsum(lengths)
        delim = infos[0].sequence_delim
        columns = {}
        for info in infos:
            source = info.proto.feature_name
            if not self.encoded:
                source = info.input_columns[0].split("__", 1)[1]
            if source in self.items:
                values = self.items[source][picks]
            else:
                values = self._values(info.proto, len(picks), self.encoded)
            text = values.astype(str)
            columns[info.input_columns[0]] = np.array(
                [
                    delim.join(text[e - n : e])
                    for e, n in zip(ends, lengths, strict=True)
                ],
                dtype=object,
            )
        return columns

    def write_sampler_tables(self, out: str) -> None:
        sampler = self.sampler
        if sampler is None:
            return
        ids = self.items[self.item_id]
        item_path = os.path.join(out, "item_table.txt")
        attrs = []
        for field in sampler.attr_fields:
            values = self.items.get(field)
            if values is None:
                values = self.rng.integers(0, _HASH_IDS, self.num_items)
            attrs.append(values.astype(str))
        lines = [
            f"{i}\t1\t{sampler.attr_delimiter.join(row)}"
            for i, row in zip(ids, zip(*attrs, strict=True), strict=True)
        ]
        _write(item_path, "id:int64\tweight:float\tattrs:string", lines)
        paths = {"item_input_path": item_path, "input_path": item_path}
        user_ids = self.users[self.user_id]
        user_path = os.path.join(out, "user_table.txt")
        _write(
            user_path, "id:int64\tweight:float", [f"{u}\t1" for u in user_ids]
        )
        paths["user_input_path"] = user_path
        users, items = self.pairs[0]
        edges = sorted(set(zip(user_ids[users], ids[items], strict=True)))
        pos_path = os.path.join(out, "pos_edge.txt")
        _write(pos_path, _EDGE_HEADER, [f"{u}\t{i}\t1" for u, i in edges])
        paths["pos_edge_input_path"] = pos_path
        hard_users = self.rng.integers(0, self.num_users, self.num_users)
        hard_items = self.rng.integers(0, self.num_items, self.num_users)
        hard = sorted(
            set(zip(user_ids[hard_users], ids[hard_items], strict=True))
        )
        hard_path = os.path.join(out, "hard_neg_edge.txt")
        _write(hard_path, _EDGE_HEADER, [f"{u}\t{i}\t1" for u, i in hard])
        paths["hard_neg_edge_input_path"] = hard_path
        for field in sampler.DESCRIPTOR.fields:
            if field.name in paths:
                setattr(sampler, field.name, paths[field.name])


_EDGE_HEADER = "userid:int64\titemid:int64\tweight:float"


def _write(path: str, header: str, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join([header, *lines]) + "\n")
