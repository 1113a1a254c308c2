"""Which TorchEasyRec fields easymatch notes or refuses (docs/config.md).

The protos declare every field of TorchEasyRec's DataConfig, TrainConfig,
EvalConfig, ExportConfig and match-model feature kinds, so its configs
never fail with "unknown field". Each declared field is one of:

- supported: easymatch implements it (value checks live in validate_*);
- noted: a PyTorch / ODPS / CUDA runtime knob with no meaning here,
  accepted with a one-line log note;
- refused: a behaviour easymatch does not implement; setting it to a
  value other than its default is a one-line error naming it.

A field of a message reachable only through a noted (refused) field is
noted (refused) with it. `tests/test_config_field_table.py` checks that
docs/config.md classifies every field exactly as `field_class` does.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from easymatch.config.locate import is_map
from easymatch.config.report import Reporter

_TORCH = "a PyTorch runtime knob, no effect here"
_CUDA = "a CUDA switch, no effect on CPU TensorFlow"
_ODPS = "an ODPS (MaxCompute) option, no effect here"
_PLANNER = "a torchrec sharding-planner hint, no effect here"
_NOT_YET = "not implemented in easymatch"

# "<message>.<field>" → the note logged when the field is set; "" when a
# specific check logs a more precise note.
NOTED: dict[str, str] = {
    "DataConfig.fg_encoded": "",
    "DataConfig.pin_memory": _TORCH,
    "DataConfig.fg_threads": "FG DAG threads; easymatch runs its own "
    "feature transforms in the tf.data graph",
    "DataConfig.is_orderby_partition": _ODPS,
    "DataConfig.odps_data_quota_name": _ODPS,
    "DataConfig.odps_data_compression": _ODPS,
    "DataConfig.in_order": "batches always come in order here",
    "TrainConfig.is_profiling": "the PyTorch profiler; no effect here",
    "TrainConfig.cudnn_allow_tf32": _CUDA,
    "TrainConfig.cuda_matmul_allow_tf32": _CUDA,
    "TrainConfig.global_embedding_constraints": _PLANNER,
    "TrainConfig.grad_scaler": "FP16 loss scaling; FP16 is not supported, "
    "so no effect here",
    "GradClipping.enable_global_grad_clip": "torchrec's switch for sharded "
    "gradients; easymatch clips the gradients its train step computes",
    "ExportConfig.cudnn_allow_tf32": _CUDA,
    "ExportConfig.cuda_matmul_allow_tf32": _CUDA,
    "IdFeature.fg_value_type": "an FG performance hint, no effect here",
    "IdFeature.embedding_constraints": _PLANNER,
    "RawFeature.embedding_constraints": _PLANNER,
    "TokenizeFeature.embedding_constraints": _PLANNER,
    "TokenizeFeature.sequence_length": "only read by sequence tokenize "
    "features, which are not implemented",
    "TokenizeFeature.sequence_delim": "only read by sequence tokenize "
    "features, which are not implemented",
    "SequenceFeature.sequence_pk": "the serving-side key of a user's "
    "sequence in TorchEasyRec's feature store; exported towers take the "
    "sequence as an input column",
    "ModelConfig.num_class": "match models have no classes",
    "ModelConfig.kernel": "a TorchEasyRec kernel choice (Triton/CUTLASS)",
    "VariationalDropout.embedding_wise_variational_dropout": "",
}

_MASK = "masking inputs in training is " + _NOT_YET
_FG_STUB = "FG DAG intermediate features are " + _NOT_YET
_DATA_TYPE = "embeddings are FP32 only"
_SEQ_FIELDS = "grouped FG sequence inputs are " + _NOT_YET

# "<message>.<field>" → why it is refused.
REFUSED: dict[str, str] = {
    "DataConfig.sample_mask_prob": _MASK,
    "DataConfig.negative_sample_mask_prob": _MASK,
    "DataConfig.sample_cost_field": "cost-based batching is " + _NOT_YET,
    "DataConfig.batch_cost_size": "cost-based batching is " + _NOT_YET,
    "DataConfig.input_fields_str": "not implemented; use input_fields",
    "DataConfig.tdm_sampler": "TDM is " + _NOT_YET,
    "TrainConfig.fine_tune_ckpt_param_map": "parameter maps are "
    + _NOT_YET
    + "; fine_tune_checkpoint restores by structural name",
    "TrainConfig.save_checkpoints_timestamp_interval": "event-time "
    "checkpoints need streaming (Kafka) input, " + _NOT_YET,
    "TrainConfig.save_checkpoints_timestamps": "event-time checkpoints "
    "need streaming (Kafka) input, " + _NOT_YET,
    "TrainConfig.save_checkpoints_timestamp_quorum": "event-time "
    "checkpoints need streaming (Kafka) input, " + _NOT_YET,
    "TrainConfig.delta_embedding_dump_config": "delta embedding dumps are "
    + _NOT_YET,
    "EvalConfig.use_dense_ema": "dense EMA weights are " + _NOT_YET,
    "ExportConfig.use_dense_ema": "dense EMA weights are " + _NOT_YET,
    "IdFeature.init_fn": "custom embedding initialisers are " + _NOT_YET,
    "IdFeature.trainable": "frozen tables are " + _NOT_YET,
    "IdFeature.use_mask": _MASK,
    "IdFeature.zch": "zero-collision hashing is " + _NOT_YET,
    "IdFeature.vocab_file": "not implemented; use vocab_list or vocab_dict",
    "IdFeature.asset_dir": "vocab_file is " + _NOT_YET,
    "IdFeature.dynamicemb": "dynamic embeddings are " + _NOT_YET,
    "IdFeature.stub_type": _FG_STUB,
    "IdFeature.data_type": _DATA_TYPE,
    "IdFeature.sequence_fields": _SEQ_FIELDS,
    "RawFeature.init_fn": "custom embedding initialisers are " + _NOT_YET,
    "RawFeature.trainable": "frozen tables are " + _NOT_YET,
    "RawFeature.use_mask": _MASK,
    "RawFeature.stub_type": _FG_STUB,
    "RawFeature.data_type": _DATA_TYPE,
    "RawFeature.autodis": "AutoDis embeddings are " + _NOT_YET,
    "RawFeature.sequence_fields": _SEQ_FIELDS,
    "TokenizeFeature.init_fn": "custom embedding initialisers are " + _NOT_YET,
    "TokenizeFeature.trainable": "frozen tables are " + _NOT_YET,
    "TokenizeFeature.use_mask": _MASK,
    "TokenizeFeature.stub_type": _FG_STUB,
    "TokenizeFeature.data_type": _DATA_TYPE,
    "TokenizeFeature.sequence_fields": _SEQ_FIELDS,
    "TokenizeFeature.tokens_as_sequence": "token sequences for sequence "
    "encoders are " + _NOT_YET,
    "TextNormalizer.stop_char_file": "stop-character files are " + _NOT_YET,
    "FeatureConfig.sequence_tokenize_feature": "sequences of texts are "
    + _NOT_YET,
    "SeqFeatureConfig.tokenize_feature": "texts inside sequences are "
    + _NOT_YET,
}


def _key(message: Descriptor, field: FieldDescriptor) -> str:
    return f"{message.name}.{field.name}"


def _is_set(message: Message, field: FieldDescriptor) -> bool:
    """Set to something other than the default (a present message counts)."""
    if field.is_repeated:
        return len(getattr(message, field.name)) > 0
    if not message.HasField(field.name):
        return False
    if field.message_type is not None:
        return True
    return getattr(message, field.name) != field.default_value


def own_class(message: Descriptor, field: FieldDescriptor) -> str:
    key = _key(message, field)
    if key in REFUSED:
        return "refused"
    return "noted" if key in NOTED else "supported"


def field_classes(root: Descriptor) -> dict[str, dict[str, str]]:
    """message name → field name → "supported" | "noted" | "refused",
    for every message reachable from `root`.

    Messages reached through supported fields classify their fields by
    NOTED / REFUSED; a message reached only through a noted or refused
    field inherits that class for all its fields.
    """
    live: dict[str, Descriptor] = {}
    below: dict[str, tuple[Descriptor, str]] = {}

    def walk(message: Descriptor) -> None:
        live[message.name] = message
        for field in message.fields:
            sub = field.message_type
            if sub is None or is_map(field):
                continue
            cls = own_class(message, field)
            if cls == "supported" and sub.name not in live:
                walk(sub)
            elif cls != "supported":
                below.setdefault(sub.name, (sub, cls))

    def inherit(message: Descriptor, cls: str) -> None:
        for field in message.fields:
            sub = field.message_type
            if sub is not None and not is_map(field):
                below.setdefault(sub.name, (sub, cls))

    walk(root)
    classes = {
        name: {f.name: own_class(d, f) for f in d.fields}
        for name, d in live.items()
    }
    pending = list(below)
    while pending:
        name = pending.pop()
        if name in classes:
            continue
        message, cls = below[name]
        classes[name] = {f.name: cls for f in message.fields}
        inherit(message, cls)
        pending.extend(n for n in below if n not in classes)
    return classes


def check_field_classes(config: Message, report: Reporter) -> None:
    """Refuses set refused fields, notes set noted ones (one line each)."""
    for path, key in _set_fields(config, ""):
        if key in REFUSED:
            report.fail(path, f"not supported: {REFUSED[key]}")
        if NOTED.get(key):
            report.warn(path, f"accepted and ignored: {NOTED[key]}")


def _set_fields(message: Message, prefix: str) -> Iterator[tuple[str, str]]:
    for field in message.DESCRIPTOR.fields:
        if not _is_set(message, field):
            continue
        path, key = prefix + field.name, _key(message.DESCRIPTOR, field)
        yield path, key
        if field.message_type is None or is_map(field):
            continue
        if key in REFUSED or key in NOTED:
            continue
        if field.is_repeated:
            for i, sub in enumerate(getattr(message, field.name)):
                yield from _set_fields(sub, f"{path}[{i}].")
        else:
            yield from _set_fields(getattr(message, field.name), path + ".")
