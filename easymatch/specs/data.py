"""What the input pipeline reads of data_config, the sampler's ids too."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Input format, batching and the label, weight and id columns.

    `id_columns`: columns the sampler and the loss match ids in (read as
    text); `sampler_item_id_field`: the sampler's item id column, None
    without a sampler (which then does not extend the item rows).
    """

    dataset_type: str
    label_field: str
    sample_weight_field: str | None = None
    batch_size: int = 1
    eval_batch_size: int = 0
    drop_remainder: bool = False
    shuffle: bool = False
    shuffle_buffer_size: int = 1
    num_workers: int = 1
    csv_fields: tuple[tuple[str, str], ...] = ()
    csv_delimiter: str = ","
    csv_with_header: bool = False
    sampler_item_id_field: str | None = None
    id_columns: tuple[str, ...] = ()

    @property
    def has_sampler(self) -> bool:
        return self.sampler_item_id_field is not None

    def batch_size_for(self, training: bool) -> int:
        """batch_size; eval_batch_size for evaluation when set."""
        if not training and self.eval_batch_size:
            return self.eval_batch_size
        return self.batch_size
