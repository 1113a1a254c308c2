"""Reading some rows of a variable without reading the whole variable.

`tf.gather(variable, ids)` becomes a `ResourceGather` of the rows only
through `variable.sparse_read`. A `MirroredVariable` (MirroredStrategy,
MultiWorkerMirroredStrategy) inherits `tf.Variable.sparse_read`, which
raises AttributeError, so `tf.gather` falls back to reading the whole
variable (`ReadVariableOp`) and gathering from the copy. Each step then
copies every row of every table and slot it gathers from: the read
copies the buffer, or a later scatter into the variable must, since the
read still holds it. Measured with two replicas, a 4M-row table: 848 ms
per step, 1.9 ms without the row-sparse update's scatters; one process:
1.2 ms. `gather_rows` reads the replica's own component instead.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def gather_rows(variable, ids: tf.Tensor) -> tf.Tensor:
    """`tf.gather(variable, ids)` as a sparse read of the rows, also for a
    distributed variable (its component on this replica or update
    device); recorded on gradient tapes as the variable's read."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    if isinstance(variable, tf.distribute.DistributedValues):
        variable = variable._get_on_device_or_primary()  # noqa: SLF001
    return tf.gather(variable, ids)
