"""Checks of tokenize_feature configs (the tokenizer file is read when the
feature is built: configs name files that tools create later)."""

from __future__ import annotations

from easymatch.config.report import Reporter
from easymatch.protos import feature_pb2

_OPT = feature_pb2.TextNormalizeOption


def validate_tokenize(
    path: str, feature: feature_pb2.TokenizeFeature, report: Reporter
) -> None:
    if feature.embedding_dim == 0:
        report.fail(f"{path}.embedding_dim", "must be > 0")
    if not feature.vocab_file:
        report.fail(f"{path}.vocab_file", "required: the tokenizer.json")
    if feature.tokenizer_type != "bpe":
        report.fail(
            f"{path}.tokenizer_type",
            f'"{feature.tokenizer_type}" is not supported; only "bpe" '
            "(a HuggingFace tokenizer.json)",
        )
    if not feature.HasField("text_normalizer"):
        return
    options = list(feature.text_normalizer.norm_options)
    where = f"{path}.text_normalizer.norm_options"
    if _OPT.TEXT_SPLITCHRS in options:
        report.fail(where, "TEXT_SPLITCHRS is not implemented in easymatch")
    # Empty means TorchEasyRec's defaults, which include both.
    missing = [
        _OPT.Name(o)
        for o in (_OPT.TEXT_CHT2CHS, _OPT.TEXT_FILTER)
        if not options or o in options
    ]
    if missing:
        report.warn(
            where,
            f"{' and '.join(missing)} not applied: easymatch has neither "
            "pyfg's traditional-to-simplified table nor its built-in "
            "stop-character list; tokens equal TorchEasyRec's for text "
            "they leave unchanged",
        )
