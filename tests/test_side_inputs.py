"""The one rule for when the loss compares item ids."""

from __future__ import annotations

import pytest

from easymatch.side_inputs import needs_item_ids, required


@pytest.mark.parametrize(
    ("in_batch", "mixed", "logq", "hits", "needed"),
    [
        (False, False, False, False, False),
        # Sampler mode: the sampler gives each negative's log q.
        (False, False, True, False, False),
        (True, False, True, False, True),
        (False, True, True, False, True),
        (False, False, False, True, True),
        (True, False, False, True, True),
    ],
)
def test_item_ids_are_needed_by_hits_and_in_batch_logq(
    in_batch, mixed, logq, hits, needed
):
    assert (
        needs_item_ids(
            in_batch_negative=in_batch,
            mixed_negatives=mixed,
            logq_correction=logq,
            remove_accidental_hits=hits,
        )
        is needed
    )


def test_a_missing_side_input_names_the_option():
    with pytest.raises(ValueError, match=r"logq_correction needs side_inputs"):
        required(None, "__neg_log_q__", "logq_correction")
    assert required(1, "a", "x") == 1
    with pytest.raises(ValueError, match=r"side_inputs\['__item_id__'\]"):
        required(None, "__item_id__", "remove_accidental_hits")
