"""Bad data ends in one line naming it; anything else is an internal
error whose traceback is kept (issue #14, finding 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits, run_cli

from easymatch import cli
from easymatch.errors import DataError, data_error_from_tf, raise_tf_error
from easymatch.features.id_feature import IdFeature
from easymatch.features.raw_feature import RawFeature


def _with_cell(source: Path, target: Path, column: str, row: int, value):
    table = pq.read_table(source)
    cells = table.column(column).to_pylist()
    cells[row] = value
    index = table.schema.get_field_index(column)
    table = table.set_column(
        index, column, pa.array(cells, table.schema.field(column).type)
    )
    pq.write_table(table, target)
    return target


def _data_error(run, *args) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        run(*args)
    error = data_error_from_tf(info.value, "batch")
    assert isinstance(error, DataError), info.value
    return str(error)


def test_id_out_of_range_is_one_line_naming_input_and_field(
    taobao_data, tmp_path
):
    train = _with_cell(
        taobao_data / "train.parquet",
        tmp_path / "t.parquet",
        "user_id",
        5,
        2609,
    )
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        demo_edits(
            taobao_data,
            tmp_path / "m",
            train_input_path=str(train),
            # Row 5 in the first batch: a shuffled run reads 384 of the
            # 2,000 rows, which need not include it (its seed is drawn).
            **{"data_config.shuffle": False},
        ),
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'easymatch: error: {train}: feature "user_id" (column "user_id"): '
        "id 2609 out of range [0, 2000) — num_buckets"
    )
    assert "Traceback" not in result.stderr


def test_text_that_is_no_number_is_a_data_error():
    ids = IdFeature("u", "c", 4, num_buckets=10, fg_encoded=True)
    assert _data_error(ids.transform, {"c": tf.constant(["3", "x1"])}) == (
        'batch: feature "u" (column "c"): value "x1" is not an integer id'
    )
    # 19 digits would overflow int64 inside to_number.
    huge = "9" * 19
    assert huge in _data_error(ids.transform, {"c": tf.constant([huge])})


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "1e999"])
def test_non_finite_multi_value_text_is_a_data_error(text):
    raw = RawFeature("p", "c", value_dim=2, separator=",")
    message = _data_error(
        raw.transform, {"c": tf.constant(["1,2", f"3,{text}"])}
    )
    assert message.startswith(
        f'batch: feature "p" (column "c"): value "{text}"'
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "-inf"])
def test_non_finite_numbers_name_file_column_and_row(
    taobao_data, tmp_path, value
):
    from easymatch.data.reader import ColumnSpec, TableReader

    source = tmp_path / "t.parquet"
    table = pq.read_table(taobao_data / "train.parquet").slice(0, 40)
    cells = pc.cast(table.column("sample_weight"), pa.string()).to_pylist()
    if isinstance(value, str):
        cells[33] = value
        column = pa.array(cells)
    else:
        column = table.column("sample_weight").to_pylist()
        column[33] = value
        column = pa.array(column)
    pq.write_table(table.set_column(20, "sample_weight", column), source)
    reader = TableReader(
        str(source), "parquet", [ColumnSpec("sample_weight", "float")], 16
    )
    with pytest.raises(DataError) as info:
        list(reader.batches())
    assert str(info.value).startswith(
        f"{source}: row 34, column 'sample_weight': "
    )
    assert str(info.value).endswith("is not a finite number")


def test_null_sample_weight_is_a_data_error(taobao_data, tmp_path):
    train = _with_cell(
        taobao_data / "train.parquet",
        tmp_path / "t.parquet",
        "sample_weight",
        3,
        None,
    )
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        demo_edits(
            taobao_data,
            tmp_path / "m",
            train_input_path=str(train),
            **{
                "data_config.sample_weight_fields": ["sample_weight"],
                # Row 3 in the first batch: the 12 steps read 384 of the
                # 2,000 rows, so a shuffled run may never reach it.
                "data_config.shuffle": False,
            },
        ),
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'easymatch: error: {train}: sample weight column "sample_weight": '
        "a row has no value (null), at row 4 of a batch"
    )


def test_other_tf_errors_are_not_reported_as_bad_data():
    error = tf.errors.InvalidArgumentError(None, None, "Incompatible shapes")
    assert data_error_from_tf(error) is None
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        raise_tf_error(error, "train.parquet")
    assert info.value is error


def _broken(args) -> None:
    args.error_log_dir = args.model_dir
    raise KeyError("a bug")


@pytest.mark.parametrize("verbose", [False, True])
def test_internal_error_is_one_line_with_the_traceback_kept(
    tmp_path, capsys, verbose
):
    args = argparse.Namespace(model_dir=str(tmp_path), verbose=verbose)
    with pytest.raises(SystemExit) as info:
        cli.run(_broken, args)
    assert info.value.code == 1
    err = capsys.readouterr().err
    log = tmp_path / cli.ERROR_LOG
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            "easymatch: internal error (a bug in easymatch, not in your config "
            "or data; traceback "
        )
    )
    assert err.strip().endswith("KeyError: 'a bug'")
    if verbose:
        assert "Traceback" in err and not log.exists()
    else:
        assert "Traceback" not in err
        assert f"traceback in {log})" in err
        assert 'raise KeyError("a bug")' in log.read_text()
