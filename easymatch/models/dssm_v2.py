"""DSSM v2: one EmbeddingGroup over all groups, so towers share tables."""

from __future__ import annotations

import keras

from easymatch.layers.embedding_group import EmbeddingGroup
from easymatch.models.dssm import DSSM


@keras.saving.register_keras_serializable(package="easymatch")
class DSSMV2(DSSM):
    """DSSM whose towers read one model-level EmbeddingGroup (SPEC §3.9).

    Features with the same `embedding_name` share one table across towers,
    e.g. the item's `adgroup_id` and the user's `click_50_seq__adgroup_id`
    when both name `adgroup_id_emb`. Towers, variational dropout (on the
    tower's own group when it has more than one feature) and outputs are
    DSSM's.

    TorchEasyRec needs `force_base_data_group` to pad user features to the
    item row count before its single embedding call, then slices the user
    group back to B rows. Here each group reads only its own features, so
    user groups keep B rows and item groups B + N with no padding; the flag
    is still required by validation, for config compatibility, and has no
    effect on the tensors. `embed_users`/`embed_items` compute only their
    tower's group, which is what an exported tower runs.
    """

    def _embedding_groups(self) -> tuple[EmbeddingGroup, EmbeddingGroup]:
        shared = self._embedding_group(self.group_specs, "embedding_group")
        return shared, shared
