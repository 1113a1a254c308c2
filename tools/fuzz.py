"""Fuzzes sample configs and training data; prints outcomes as JSON.

python tools/fuzz.py --examples N [--kind config|data|both] [--seed S]

Each case mutates one thing — a line of a sample config (wrong type,
out-of-range number, missing or duplicated field, unknown enum value) or
the training data (wrong column type, nulls, empty strings, huge or
negative ids, separators inside values, an empty file, zero-row row
groups, a truncated file) — and runs train_and_evaluate on it for two
steps. Every case must end in a one-line ConfigError/DataError (or another
easymatch error) or train; anything else counts as a traceback. The
output counts cases by outcome and lists each traceback's last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import hypothesis  # noqa: E402
import keras  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]

from gen_taobao_data import generate  # noqa: E402

from easymatch.config import load_pipeline_config  # noqa: E402
from easymatch.errors import EasyMatchError, disk_error  # noqa: E402
from easymatch.training.loop import train_and_evaluate  # noqa: E402

SAMPLES = [
    "dssm_demo",
    "dssm_demo_vd",
    "dssm_v2_taobao",
    "dssm_mixed_negatives",
    "dssm_hard_negative_sampler",
]
TABLES = {
    "input_path": "item_table.txt",
    "item_input_path": "item_table.txt",
    "user_input_path": "user_table.txt",
    "pos_edge_input_path": "pos_edge.txt",
    "hard_neg_edge_input_path": "hard_neg_edge.txt",
}
CONFIG_MUTATIONS = ["wrong_type", "out_of_range", "missing", "duplicated"]
CONFIG_MUTATIONS += ["unknown_enum"]
BAD_NUMBERS = ["-1", "0", "-2.5", "18446744073709551616", "1e40"]
DATA_MUTATIONS = [
    "wrong_type",
    "nulls",
    "empty_strings",
    "huge_ids",
    "negative_ids",
    "separators",
    "empty_file",
    "zero_row_groups",
    "truncated",
]


@dataclass
class Workspace:
    """Tiny data, each sample config pointed at it, and a case counter."""

    root: str
    configs: dict[str, str] = field(default_factory=dict)
    cases: int = 0

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    def next_dir(self) -> str:
        self.cases += 1
        return os.path.join(self.root, f"case{self.cases}")


def workspace(root: str) -> Workspace:
    """Generates 96 rows of data and the base configs under `root`."""
    space = Workspace(root)
    generate(space.data, num_users=40, num_items=30, num_rows=96, seed=5)
    for name in SAMPLES:
        path = os.path.join(ROOT, "samples", f"{name}.config")
        config = load_pipeline_config(path)
        config.train_input_path = os.path.join(space.data, "train.parquet")
        config.eval_input_path = ""
        config.data_config.batch_size = 16
        config.data_config.shuffle = False
        train = config.train_config
        train.num_steps, train.num_epochs = 2, 0
        train.save_checkpoints_steps = train.log_step_count_steps = 2
        kind = config.data_config.WhichOneof("sampler")
        if kind:
            sampler = getattr(config.data_config, kind)
            sampler.num_sample = 8
            for name_, table in TABLES.items():
                if name_ in type(sampler).DESCRIPTOR.fields_by_name:
                    setattr(sampler, name_, os.path.join(space.data, table))
        space.configs[name] = text_format.MessageToString(config)
    return space


def run_case(config_text: str, model_dir: str) -> tuple[str, str]:
    """(outcome, message): the error class's name, "trained" or
    "traceback"; an error message with a line break is a traceback too."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "fuzz.config")
    with open(path, "w") as handle:
        handle.write(config_text)
    keras.backend.clear_session()
    try:
        config = load_pipeline_config(path)
        config.model_dir = model_dir
        train_and_evaluate(config)
    except EasyMatchError as error:
        outcome, message = type(error).__name__, str(error)
    except Exception as error:  # noqa: BLE001 - what is being counted
        disk = disk_error(error)
        if disk is None:
            last = traceback.format_exception_only(error)[-1].strip()
            return "traceback", last
        outcome, message = "DiskError", str(disk)
    else:
        return "trained", ""
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    if "\n" in message.strip():
        return "traceback", message.strip().splitlines()[-1]
    return outcome, message


# -- config mutations -------------------------------------------------------
def _block_end(lines: list[str], start: int) -> int:
    depth = 0
    for index in range(start, len(lines)):
        depth += lines[index].count("{") - lines[index].count("}")
        if depth <= 0:
            return index
    return len(lines) - 1


def mutate_config(text: str, draw) -> str:
    lines = text.splitlines()
    index = draw(st.integers(0, len(lines) - 1))
    line = lines[index]
    kind = draw(st.sampled_from(CONFIG_MUTATIONS))
    indent = line[: len(line) - len(line.lstrip())]
    name, _, value = line.strip().partition(": ")
    if kind == "missing":
        end = _block_end(lines, index) if line.endswith("{") else index
        del lines[index : end + 1]
    elif kind == "duplicated":
        end = _block_end(lines, index) if line.endswith("{") else index
        lines[index:index] = lines[index : end + 1]
    elif value:
        if kind == "wrong_type":
            new = '"text"' if not value.startswith('"') else "12"
        elif kind == "out_of_range":
            new = draw(st.sampled_from(BAD_NUMBERS))
        else:  # unknown_enum
            new = "NO_SUCH_VALUE"
        lines[index] = f"{indent}{name}: {new}"
    return "\n".join(lines) + "\n"


# -- data mutations ---------------------------------------------------------
def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def mutate_data(source: str, target: str, draw) -> str:
    table = pq.read_table(source)
    kind = draw(st.sampled_from(DATA_MUTATIONS))
    name = draw(st.sampled_from(table.column_names))
    rows = table.num_rows
    some = draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=5))
    column = table.column(name).to_pylist()
    is_int = pa.types.is_integer(table.schema.field(name).type)
    if kind == "wrong_type":
        table = _replace(table, name, pa.array([f"x{v}" for v in column]))
    elif kind == "nulls":
        table = _replace(
            table, name, pa.nulls(rows, table.schema.field(name).type)
        )
    elif kind == "empty_strings":
        table = _replace(table, name, pa.array([""] * rows))
    elif kind in ("huge_ids", "negative_ids") and is_int:
        value = 2**63 - 1 if kind == "huge_ids" else -5
        for row in some:
            column[row] = value
        table = _replace(table, name, pa.array(column, pa.int64()))
    elif kind == "separators":
        separator = draw(st.sampled_from(["\x1d", "|", ",", ":", ";", "\x02"]))
        text = [None if v is None else str(v) for v in column]
        for row in some:
            text[row] = f"{text[row]}{separator}{text[row]}"
        table = _replace(table, name, pa.array(text))
    elif kind == "empty_file":
        table = table.slice(0, 0)
    if kind == "zero_row_groups":
        with pq.ParquetWriter(target, table.schema) as writer:
            writer.write_table(table.slice(0, 0))
            writer.write_table(table)
            writer.write_table(table.slice(0, 0))
    else:
        pq.write_table(table, target, row_group_size=32)
    if kind == "truncated":
        size = os.path.getsize(target)
        keep = draw(st.integers(0, size - 1))
        with open(target, "r+b") as handle:
            handle.truncate(keep)
    return kind


# -- running ------------------------------------------------------------------
def fuzz(space: Workspace, kind: str, examples: int, seed: int) -> dict:
    """Runs `examples` cases of `kind`; counts and tracebacks."""
    counts: Counter = Counter()
    tracebacks: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def case(data) -> None:
        sample = data.draw(st.sampled_from(SAMPLES))
        text = space.configs[sample]
        model_dir = space.next_dir()
        what = sample
        if kind == "config":
            text = mutate_config(text, data.draw)
        else:
            os.makedirs(model_dir, exist_ok=True)
            train = os.path.join(space.root, f"train{space.cases}.parquet")
            source = os.path.join(space.data, "train.parquet")
            what += ": " + mutate_data(source, train, data.draw)
            text = text.replace(source, train)
        outcome, message = run_case(text, model_dir)
        counts[outcome] += 1
        if outcome == "traceback":
            tracebacks.append(f"{what}: {message}")

    hypothesis.seed(seed)(case)()
    return {"counts": dict(counts), "tracebacks": tracebacks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--kind", choices=["config", "data", "both"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kinds = ["config", "data"] if args.kind in (None, "both") else [args.kind]
    root = tempfile.mkdtemp(prefix="easymatch-fuzz-")
    try:
        space = workspace(root)
        report = {
            kind: fuzz(space, kind, args.examples, args.seed) for kind in kinds
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
