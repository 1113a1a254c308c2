"""A full TorchEasyRec-style DSSM config and helpers to vary it.

Shared by the tests/test_config_*.py modules; it holds no tests itself
beyond checking that the sample is valid.
"""

from __future__ import annotations

from pathlib import Path

from easymatch.config import load_pipeline_config

DSSM_CONFIG = """\
# DSSM on a small local dataset; mirrors examples/dssm_taobao.config.
train_input_path: "data/train/*.parquet"
eval_input_path: "data/eval/*.parquet"
model_dir: "experiments/dssm"
train_config {
    sparse_optimizer {
        adagrad_optimizer {
            lr: 0.001
        }
        constant_learning_rate {
        }
    }
    dense_optimizer {
        adam_optimizer {
            lr: 0.001
        }
        constant_learning_rate {
        }
    }
    num_epochs: 2
}
eval_config {
}
export_config {
    exporter_type: "latest"
}
data_config {
    batch_size: 256
    dataset_type: ParquetDataset
    fg_mode: FG_DAG
    label_fields: "clk"
    num_workers: 2
    negative_sampler {
        input_path: "data/item_table.txt"
        num_sample: 128
        attr_fields: "item_id"
        attr_fields: "cate_id"
        attr_fields: "price"
        item_id_field: "item_id"
        attr_delimiter: "\\x02"
    }
}
feature_configs {
    id_feature {
        feature_name: "user_id"
        expression: "user:user_id"
        num_buckets: 1000
        embedding_dim: 16
    }
}
feature_configs {
    raw_feature {
        feature_name: "age"
        expression: "user:age"
        normalizer: "method=minmax,min=0,max=100"
    }
}
feature_configs {
    id_feature {
        feature_name: "pid"
        expression: "context:pid"
        hash_bucket_size: 20
        embedding_dim: 8
    }
}
feature_configs {
    id_feature {
        feature_name: "item_id"
        expression: "item:item_id"
        num_buckets: 5000
        embedding_dim: 16
    }
}
feature_configs {
    id_feature {
        feature_name: "cate_id"
        expression: "item:cate_id"
        vocab_list: ["a", "b", "c"]
        embedding_dim: 8
    }
}
feature_configs {
    raw_feature {
        feature_name: "price"
        expression: "item:price"
        boundaries: [1.5, 10, 100]
        embedding_dim: 8
    }
}
feature_configs {
    sequence_feature {
        sequence_name: "click_seq"
        sequence_length: 50
        sequence_delim: "|"
        features {
            id_feature {
                feature_name: "item_id"
                expression: "item:item_id"
                num_buckets: 5000
                embedding_dim: 16
            }
        }
        features {
            id_feature {
                feature_name: "cate_id"
                expression: "item:cate_id"
                vocab_list: ["a", "b", "c"]
                embedding_dim: 8
            }
        }
    }
}
model_config {
    feature_groups {
        group_name: "user"
        feature_names: "user_id"
        feature_names: "age"
        feature_names: "pid"
        sequence_groups {
            group_name: "click_seq"
            feature_names: "click_seq__item_id"
            feature_names: "click_seq__cate_id"
        }
        sequence_encoders {
            pooling_encoder {
                input: "click_seq"
                pooling_type: "mean"
            }
        }
        group_type: DEEP
    }
    feature_groups {
        group_name: "item"
        feature_names: "item_id"
        feature_names: "cate_id"
        feature_names: "price"
        group_type: DEEP
    }
    dssm {
        user_tower {
            input: 'user'
            mlp {
                hidden_units: [64, 32]
            }
        }
        item_tower {
            input: 'item'
            mlp {
                hidden_units: [64, 32]
            }
        }
        output_dim: 16
    }
    metrics {
        recall_at_k {
            top_k: 1
        }
    }
    metrics {
        recall_at_k {
            top_k: 5
        }
    }
    losses {
        softmax_cross_entropy {}
    }
}
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the text"
    return hits[occurrence - 1]


def replace(text: str, old: str, new: str) -> str:
    """`text` with the single occurrence of `old` replaced."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def remove_block(text: str, opener: str, occurrence: int = 1) -> str:
    """Removes the block whose first line contains `opener`."""
    lines = text.splitlines(keepends=True)
    start = line_of(text, opener, occurrence) - 1
    depth, end = 0, start
    for end in range(start, len(lines)):
        depth += lines[end].count("{") - lines[end].count("}")
        if depth == 0:
            break
    return "".join(lines[:start] + lines[end + 1 :])


def write(tmp_path: Path, text: str, name: str = "dssm.config") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_is_valid(tmp_path: Path) -> None:
    config = load_pipeline_config(str(write(tmp_path, DSSM_CONFIG)))
    assert config.model_config.WhichOneof("model") == "dssm"
