"""A stack of Dense → norm → activation → dropout blocks, as TER's MLP."""

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops


def _leaky_relu(x: Any) -> Any:
    # PyTorch's default slope; Keras' own default is 0.2.
    return ops.leaky_relu(x, negative_slope=0.01)


def _gelu(x: Any) -> Any:
    # nn.GELU defaults to the exact erf form; keras.ops.gelu to tanh.
    return ops.gelu(x, approximate=False)


ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "nn.ReLU": ops.relu,
    "nn.Sigmoid": ops.sigmoid,
    "nn.Tanh": ops.tanh,
    "nn.LeakyReLU": _leaky_relu,
    "nn.GELU": _gelu,
    "nn.SiLU": ops.silu,
}


def _torch_linear_initializer(fan_in: int) -> keras.initializers.Initializer:
    # nn.Linear: kaiming_uniform(a=√5) for the weight and the same bound,
    # 1/√fan_in, for the bias.
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)


@keras.saving.register_keras_serializable(package="easymatch")
class MLP(keras.layers.Layer):
    """TER's MLP (SPEC §3.3); identity when `hidden_units` is empty.

    Sublayers compute in the MLP's dtype policy (e.g. `mixed_bfloat16`).
    Each hidden layer is `Dense(use_bias=bias and not use_bn)` →
    `BatchNormalization` (use_bn) or `LayerNormalization` (use_ln) →
    activation → `Dropout` (ratio > 0), with PyTorch's defaults for the
    initialisation, the norm epsilons and the BatchNorm momentum.

    Args:
        hidden_units: output units of each hidden layer.
        activation: a PyTorch name (`"nn.ReLU"`, `"nn.Sigmoid"`,
            `"nn.Tanh"`, `"nn.LeakyReLU"`, `"nn.GELU"`, `"nn.SiLU"`), or
            `""` for none.
        use_bn: batch-normalise after each Dense.
        use_ln: layer-normalise after each Dense.
        bias: give each Dense a bias (never with use_bn).
        dropout_ratio: empty for no dropout, one ratio for every layer,
            or one ratio per hidden layer.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        activation: str = "nn.ReLU",
        use_bn: bool = False,
        use_ln: bool = False,
        bias: bool = True,
        dropout_ratio: Sequence[float] = (),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if use_bn and use_ln:
            raise ValueError("MLP cannot use both use_bn and use_ln.")
        if activation and activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown MLP activation {activation!r}; expected one of "
                f"{sorted(ACTIVATIONS)} or ''."
            )
        self.hidden_units = [int(units) for units in hidden_units]
        dropout_ratio = [float(ratio) for ratio in dropout_ratio]
        if len(dropout_ratio) <= 1:
            dropout_ratio = (dropout_ratio or [0.0]) * len(self.hidden_units)
        elif len(dropout_ratio) != len(self.hidden_units):
            raise ValueError(
                f"dropout_ratio has {len(dropout_ratio)} values but there are "
                f"{len(self.hidden_units)} hidden_units."
            )
        self.dropout_ratio = dropout_ratio
        self.activation = activation
        self.use_bn = use_bn
        self.use_ln = use_ln
        self.bias = bias
        self._input_dim: int | None = None
        # Filled in build, where the first Dense learns its fan_in.
        self._blocks: list[keras.layers.Layer] = []

    @property
    def output_dim(self) -> int:
        """The last hidden unit count; the input dim if there are none."""
        if self.hidden_units:
            return self.hidden_units[-1]
        if self._input_dim is None:
            raise ValueError("An MLP without hidden_units must be built first.")
        return self._input_dim

    def build(self, input_shape: tuple) -> None:
        self._input_dim = int(input_shape[-1])
        shape = tuple(input_shape)
        fan_in = self._input_dim
        for units, ratio in zip(
            self.hidden_units, self.dropout_ratio, strict=True
        ):
            # Two instances: an unseeded Keras initializer repeats its
            # values, so a shared one would copy the kernel into the bias.
            block = [
                keras.layers.Dense(
                    units,
                    use_bias=self.bias and not self.use_bn,
                    kernel_initializer=_torch_linear_initializer(fan_in),
                    bias_initializer=_torch_linear_initializer(fan_in),
                    dtype=self.dtype_policy,
                )
            ]
            if self.use_bn:
                block.append(
                    keras.layers.BatchNormalization(
                        momentum=0.9, epsilon=1e-5, dtype=self.dtype_policy
                    )
                )
            if self.use_ln:
                block.append(
                    keras.layers.LayerNormalization(
                        epsilon=1e-5, dtype=self.dtype_policy
                    )
                )
            if self.activation:
                block.append(
                    keras.layers.Activation(
                        ACTIVATIONS[self.activation], dtype=self.dtype_policy
                    )
                )
            if ratio > 0.0:
                block.append(
                    keras.layers.Dropout(ratio, dtype=self.dtype_policy)
                )
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            self._blocks.extend(block)
            fan_in = units

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = inputs
        for layer in self._blocks:
            x = layer(x, training=training)
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            use_bn=self.use_bn,
            use_ln=self.use_ln,
            bias=self.bias,
            dropout_ratio=list(self.dropout_ratio),
        )
        return config
