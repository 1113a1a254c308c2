"""All-gathers whose row counts change from step to step, as row-sparse
gradients' do, inside one `tf.while_loop` (steps_per_execution > 1).

TF 2.20's all-reduce of a `tf.IndexedSlices` all-gathers its rows padded to
the replicas' longest, and a collective instance keeps the shape of its
first execution. In a `tf.while_loop` every iteration runs the same
instance (TF assigns one instance key per op and call), so the second step
fails with "Shape mismatch in the collective instance". Here each step's
gathers take instance keys of their own, derived from a step counter that
every replica shares, in a group key of their own: the padded row count is
free to change from step to step, and the result is what TF's own gather
returns (replica order, rows unpadded).
"""

from __future__ import annotations

import itertools

import tensorflow as tf
from tensorflow.python.ops import collective_ops

# Far above the group keys tf.distribute assigns (counting from 1); one
# group per VaryingGather, so two models trained one after the other in a
# process never reuse an instance key (workers create them in the same
# order, so their keys agree).
_GROUP_KEY_BASE = 0x45A10000
_next_group = itertools.count()
# Instance keys are int32; they wrap after this many keys (2^31 / keys per
# step steps of one process).
_KEY_SPACE = (1 << 31) - 2


def varying_gather() -> VaryingGather | None:
    """A VaryingGather for the strategy in scope when it mirrors variables
    over several replicas (MirroredStrategy, MWMS), else None."""
    strategy = tf.distribute.get_strategy()
    mirrored = (
        tf.distribute.MirroredStrategy,
        tf.distribute.MultiWorkerMirroredStrategy,
    )
    if strategy.num_replicas_in_sync > 1 and isinstance(strategy, mirrored):
        return VaryingGather()
    return None


class VaryingGather:
    """Row gathers over the replicas of the current strategy.

    Construct it under the strategy's scope (its ordering token is a
    mirrored variable, one per replica device) and call it in a replica
    context. Not a Trackable: the token stays out of checkpoints.
    """

    def __init__(self) -> None:
        strategy = tf.distribute.get_strategy()
        self.group_size = strategy.num_replicas_in_sync
        self.group_key = _GROUP_KEY_BASE + next(_next_group)
        # Collectives on a device run in the order of a resource they all
        # use; without one, gathers issued in a tf.function never
        # complete (measured with two logical CPUs).
        self.token = tf.Variable(
            0.0,
            trainable=False,
            name="varying_gather_token",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def _gather(self, tensor: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
        return collective_ops.all_gather_v2(
            tensor,
            self.group_size,
            self.group_key,
            tf.cast(key % _KEY_SPACE + 1, tf.int32),
            ordering_token=self.token.handle,
        )

    def __call__(
        self, tensors: list[tf.Tensor], step: tf.Tensor
    ) -> list[tf.Tensor]:
        """Each tensor's rows from every replica, in replica order.

        `step` must be equal on every replica and never repeat within a
        process (an optimizer's iteration count): it picks the instance
        keys, 1 + len(tensors) per step.
        """
        stride = 1 + len(tensors)
        first_key = tf.cast(step, tf.int64) * stride
        lengths = self._gather(
            tf.stack([tf.shape(t, out_type=tf.int32)[0] for t in tensors]),
            first_key,
        )
        lengths = tf.reshape(lengths, [self.group_size, len(tensors)])
        gathered = []
        for index, tensor in enumerate(tensors):
            counts = lengths[:, index]
            most = tf.reduce_max(counts)
            padding = [[0, most - tf.shape(tensor)[0]]]
            padding += [[0, 0]] * (tensor.shape.rank - 1)
            rows = self._gather(tf.pad(tensor, padding), first_key + 1 + index)
            keep = tf.range(most)[tf.newaxis, :] < counts[:, tf.newaxis]
            gathered.append(tf.boolean_mask(rows, tf.reshape(keep, [-1])))
        return gathered

    def sum_indexed_slices(
        self, gradients: list[tf.IndexedSlices], step: tf.Tensor
    ) -> list[tf.IndexedSlices]:
        """The replicas' row-sparse gradients summed, as concatenated rows
        (duplicate ids are the consumer's to add up, as with TF's)."""
        parts = [g.values for g in gradients]
        parts += [g.indices for g in gradients]
        gathered = self(parts, step)
        count = len(gradients)
        return [
            tf.IndexedSlices(values, indices, g.dense_shape)
            for g, values, indices in zip(
                gradients, gathered[:count], gathered[count:], strict=True
            )
        ]
