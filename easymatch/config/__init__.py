"""The pipeline config: TorchEasyRec's text format, loaded and validated.

Every problem is a `easymatch.errors.ConfigError` whose message is one
line, `<file>:<line>: <field path>: <what is wrong>`. See docs/config.md.
"""

from easymatch.config.edit import edit_config
from easymatch.config.features import (
    FeatureInfo,
    feature_name,
    iter_features,
    sampler_config,
)
from easymatch.config.loader import (
    load_pipeline_config,
    load_pipeline_config_from_text,
    save_pipeline_config,
)
from easymatch.config.validate import eval_metric_keys
from easymatch.config.validate_features import id_table_size

__all__ = [
    "FeatureInfo",
    "edit_config",
    "eval_metric_keys",
    "feature_name",
    "id_table_size",
    "iter_features",
    "load_pipeline_config",
    "load_pipeline_config_from_text",
    "sampler_config",
    "save_pipeline_config",
]
