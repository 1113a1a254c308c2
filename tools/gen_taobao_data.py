"""Writes synthetic Taobao-style data with a planted, known structure.

Files in --output_dir: train.parquet and eval.parquet (the dssm_taobao
example's columns, SPEC §5.1; eval holds clicks later than every train
click), item.parquet (one row per item), and the sampler tables of SPEC §2.6:
item_table.txt (weight = popularity, attrs = ITEM_ATTRS joined by "\\x02"),
user_table.txt (weight = activity), pos_edge.txt (weight = train clicks) and
hard_neg_edge.txt (unclicked items of the next cluster, (c + 1) mod C, which
has a similar price level). The same arguments give byte-identical files.

The structure, and which columns are informative or noise, is described in
easymatch/data/synthetic.py.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

try:
    from easymatch.data import synthetic as syn
except ModuleNotFoundError:  # run as a script from a checkout, not installed
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    from easymatch.data import synthetic as syn


def _write_table(path: str, columns: dict[str, object]) -> None:
    """A sampler table: "name:type" header, then tab-separated rows."""
    with open(path, "wb") as f:
        f.write("\t".join(columns).encode() + b"\n")
        options = pacsv.WriteOptions(
            include_header=False, delimiter="\t", quoting_style="none"
        )
        pacsv.write_csv(pa.table(columns), f, options)


def _sampler_tables(
    rng: np.random.Generator,
    out: str,
    items: dict,
    users: dict,
    train: tuple[np.ndarray, np.ndarray],
    num_hard: int,
) -> None:
    attrs = [pa.array(items[k]).cast(pa.string()) for k in syn.ITEM_ATTRS]
    _write_table(
        os.path.join(out, "item_table.txt"),
        {
            "id:int64": items["adgroup_id"],
            "weight:float": items["weight"],
            "attrs:string": pc.binary_join_element_wise(*attrs, "\x02"),
        },
    )
    act = users["activity"]
    _write_table(
        os.path.join(out, "user_table.txt"),
        {"id:int64": users["user_id"], "weight:float": act / act.max()},
    )
    user, item = train
    n_items = len(items["weight"])
    pairs, clicks = np.unique(user * n_items + item, return_counts=True)
    hard_users = np.repeat(np.unique(user), num_hard)
    neighbour = (users["cluster"][hard_users] + 1) % len(items["size"])
    negs = hard_users * n_items + syn.in_cluster_draw(rng, items, neighbour)
    negs = np.unique(negs[~np.isin(negs, pairs)])
    for name, codes, weight in (
        ("pos_edge.txt", pairs, clicks.astype(np.float64)),
        ("hard_neg_edge.txt", negs, np.ones(len(negs))),
    ):
        _write_table(
            os.path.join(out, name),
            {
                "userid:int64": codes // n_items,
                "itemid:int64": codes % n_items,
                "weight:float": weight,
            },
        )


def generate(
    output_dir: str,
    num_users: int,
    num_items: int,
    num_rows: int,
    seed: int,
    num_eval_rows: int | None = None,
    num_clusters: int = 20,
    seq_len: int = 50,
    p_in: float = 0.85,
    num_hard: int = 5,
) -> dict[str, float]:
    """Writes the files into ``output_dir``; returns the summary.

    ``num_eval_rows`` defaults to a tenth of ``num_rows``; ``num_hard`` is
    the number of hard negatives drawn per user (duplicates removed).
    """
    c = num_clusters
    if not 1 <= c <= min(num_items, syn.MAX_CLUSTERS):
        raise ValueError(
            f"num_clusters must be in [1, min(num_items, {syn.MAX_CLUSTERS})]"
        )
    if num_items > syn.NUM_ADGROUPS or num_users > syn.NUM_USER_IDS:
        raise ValueError("num_items or num_users beyond the example's buckets")
    if min(num_users, num_rows) < 1:
        raise ValueError("num_users and num_rows must be >= 1")
    n_eval = max(1, num_rows // 10) if num_eval_rows is None else num_eval_rows
    rng = np.random.default_rng(seed)
    items = syn.make_items(rng, num_items, c)
    users = syn.make_users(rng, num_users, c)
    clicks = syn.make_clicks(rng, items, users, (num_rows, n_eval), p_in)
    table = syn.samples_table(rng, items, users, clicks, seq_len)
    os.makedirs(output_dir, exist_ok=True)
    for name, part in (("train", table[:num_rows]), ("eval", table[num_rows:])):
        path = os.path.join(output_dir, f"{name}.parquet")
        # Several row groups, so that readers can work in parallel.
        pq.write_table(part, path, row_group_size=65536)
    item_table = pa.table({k: items[k] for k in syn.ITEM_ATTRS})
    pq.write_table(item_table, os.path.join(output_dir, "item.parquet"))
    user, item, _ = clicks
    train = (user[:num_rows], item[:num_rows])
    _sampler_tables(rng, output_dir, items, users, train, num_hard)
    return syn.summarize(items, users, clicks, num_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    for name in ("num_users", "num_items", "num_rows"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_eval_rows", type=int, default=None)
    parser.add_argument("--num_clusters", type=int, default=20)
    parser.add_argument("--seq_len", type=int, default=50)
    parser.add_argument("--p_in", type=float, default=0.85)
    parser.add_argument("--num_hard", type=int, default=5)
    for key, value in generate(**vars(parser.parse_args())).items():
        print(f"{key}: {round(value, 4)}")


if __name__ == "__main__":
    main()
