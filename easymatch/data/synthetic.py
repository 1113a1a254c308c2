"""Synthetic Taobao-style clicks with a planted, known structure.

The world model behind tools/gen_taobao_data.py. Users and items belong to
one of C latent clusters. A click is on an item of the user's cluster with
probability p_in (Zipf popularity within the cluster), else on any item
(global popularity). Clicks get distinct times; the train clicks come first,
then the eval ones, by users who also clicked in train. Each row's
click_50_seq__* columns hold the user's earlier clicks, most recent first,
joined by "|". Every value is within the dssm_taobao example's num_buckets.

Informative columns (for feature-importance checks):
- item side: cate_id identifies the cluster exactly (each cluster owns its
  categories), so do brand and customer; campaign_id mostly; price by its
  level (neighbouring clusters c and c + 1 have similar prices).
- user side: INFORMATIVE_USER_COLUMNS (cms_segid, age_level, occupation)
  take a per-cluster value with the given probability, else a uniform one;
  user_id and the click sequences identify the user and so the cluster.
- pure noise: NOISE_COLUMNS; clk is always 1; sample_weight is 2.0 for
  about 10% of random rows, else 1.0.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

USER_BUCKETS = {
    "cms_segid": 98,
    "cms_group_id": 14,
    "final_gender_code": 3,
    "age_level": 8,
    "pvalue_level": 5,
    "shopping_level": 5,
    "occupation": 3,
    "new_user_class_level": 6,
}
INFORMATIVE_USER_COLUMNS = {
    "cms_segid": 0.8,
    "age_level": 0.6,
    "occupation": 0.6,
}
NOISE_COLUMNS = [
    *(k for k in USER_BUCKETS if k not in INFORMATIVE_USER_COLUMNS),
    "pid",
]
ITEM_BUCKETS = {"cate_id": 12961, "campaign_id": 423438, "customer": 255877}
NUM_BRANDS, NUM_ADGROUPS, NUM_USER_IDS = 461498, 846812, 1141730
ITEM_COLUMNS = ["adgroup_id", "cate_id", "campaign_id", "customer", "brand"]
ITEM_ATTRS = [*ITEM_COLUMNS, "price"]  # the sampler's attr_fields order
CATES_PER_CLUSTER, BRANDS_PER_CLUSTER, ITEMS_PER_CAMPAIGN = 4, 25, 3
PIDS = pa.array(["430548_1007", "430539_1007", "430547_1007"])
MAX_CLUSTERS = ITEM_BUCKETS["cate_id"] // CATES_PER_CLUSTER
ZIPF_EXPONENT = 1.0
CHUNK = 1 << 16  # rows per string chunk, to stay below 2 GiB per chunk


def _draw(
    cdf: np.ndarray, lo: np.ndarray | int, hi: np.ndarray | int, u: np.ndarray
) -> np.ndarray:
    """Inverse-CDF draws: position of u in cdf, kept within [lo, hi)."""
    return np.clip(np.searchsorted(cdf, u, side="right"), lo, hi - 1)


def make_items(
    rng: np.random.Generator, n: int, c: int
) -> dict[str, np.ndarray]:
    """Item columns (ITEM_ATTRS) by item id, plus their cluster, popularity
    rank within it, global popularity weight (max 1) and sampling tables."""
    cluster = rng.permutation(np.arange(n) % c)
    order = np.lexsort((rng.random(n), cluster))  # by cluster, random rank
    size = np.bincount(cluster, minlength=c)
    start = np.cumsum(size) - size
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - start[cluster[order]]
    weight = 1.0 / (rank + 1.0) ** ZIPF_EXPONENT
    in_cluster = weight / np.bincount(cluster, weight, c)[cluster]
    cates = rng.choice(ITEM_BUCKETS["cate_id"], (c, CATES_PER_CLUSTER), False)
    brand_index = rng.integers(0, BRANDS_PER_CLUSTER, n)
    brands = rng.choice(NUM_BRANDS, (c, BRANDS_PER_CLUSTER), False)
    customers = rng.choice(
        ITEM_BUCKETS["customer"], (c, BRANDS_PER_CLUSTER), False
    )
    campaigns = rng.choice(
        ITEM_BUCKETS["campaign_id"], -(-n // ITEMS_PER_CAMPAIGN), False
    )
    campaign = np.empty(n, np.int64)
    campaign[order] = campaigns[np.arange(n) // ITEMS_PER_CAMPAIGN]
    level = np.geomspace(2.0, 2000.0, c)[cluster]
    price = level * np.exp(rng.normal(0.0, 0.4, n))
    return {
        "adgroup_id": np.arange(n, dtype=np.int64),
        "cate_id": cates[cluster, rng.integers(0, CATES_PER_CLUSTER, n)],
        "campaign_id": campaign,
        "customer": customers[cluster, brand_index],
        "brand": brands[cluster, brand_index],
        "price": np.maximum(np.round(price, 2), 0.01),
        "cluster": cluster,
        "rank": rank,
        "weight": weight / weight.max(),
        "in_cdf": np.cumsum(in_cluster[order]),
        "order": order,
        "start": start,
        "size": size,
    }


def make_users(
    rng: np.random.Generator, n: int, c: int
) -> dict[str, np.ndarray]:
    """User columns by user id, plus cluster and activity (click rate)."""
    cluster = rng.integers(0, c, n)
    users = {"user_id": np.arange(n, dtype=np.int64), "cluster": cluster}
    for name, buckets in USER_BUCKETS.items():
        value = rng.integers(0, buckets, n)
        if name in INFORMATIVE_USER_COLUMNS:
            follows = rng.random(n) < INFORMATIVE_USER_COLUMNS[name]
            value = np.where(
                follows, rng.integers(0, buckets, c)[cluster], value
            )
        users[name] = value
    users["activity"] = rng.lognormal(0.0, 1.0, n)
    return users


def in_cluster_draw(
    rng: np.random.Generator, items: dict, clusters: np.ndarray
) -> np.ndarray:
    """One item per entry of ``clusters``, by popularity within it."""
    lo = items["start"][clusters]
    pos = _draw(
        items["in_cdf"],
        lo,
        lo + items["size"][clusters],
        clusters + rng.random(len(clusters)),
    )
    return items["order"][pos]


def _sequences(
    users: np.ndarray, clicked: np.ndarray, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per click (in user, time order) the index of earlier clicks of the
    same user, most recent first, as list offsets and flat values."""
    n = len(users)
    first = np.r_[True, users[1:] != users[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    length = np.minimum(np.arange(n) - group_start, seq_len)
    offsets = np.r_[0, np.cumsum(length)]
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], length)
    return offsets, clicked[np.repeat(np.arange(n), length) - within - 1]


def make_clicks(
    rng: np.random.Generator,
    items: dict,
    users: dict,
    counts: tuple[int, int],
    p_in: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, time) per click; train clicks first, then eval ones."""
    (n_train, n_eval), act = counts, users["activity"]
    user = rng.choice(len(act), n_train, p=act / act.sum())
    active = np.unique(user)  # eval clicks come from users seen in train
    eval_user = rng.choice(active, n_eval, p=act[active] / act[active].sum())
    user = np.r_[user, eval_user]
    n = len(user)
    time = np.r_[rng.permutation(n_train), n_train + rng.permutation(n_eval)]
    item = in_cluster_draw(rng, items, users["cluster"][user])
    pop = np.cumsum(items["weight"])
    anywhere = _draw(pop, 0, len(pop), rng.random(n) * pop[-1])
    return user, np.where(rng.random(n) < p_in, item, anywhere), time


def samples_table(
    rng: np.random.Generator,
    items: dict,
    users: dict,
    clicks: tuple[np.ndarray, np.ndarray, np.ndarray],
    seq_len: int,
) -> pa.Table:
    """One row per click, in time order."""
    user, item, time = clicks
    n = len(user)
    by_user = np.lexsort((time, user))
    offsets, flat = _sequences(user[by_user], item[by_user], seq_len)
    at_time = np.empty(n, np.int64)  # time → position in by_user order
    at_time[time[by_user]] = np.arange(n)
    by_time = np.argsort(time)
    rows = {k: users[k][user[by_time]] for k in ["user_id", *USER_BUCKETS]}
    rows |= {k: items[k][item[by_time]] for k in ITEM_ATTRS}
    rows["pid"] = PIDS.take(rng.integers(0, len(PIDS), n))
    for k in ("adgroup_id", "cate_id", "brand"):
        # Large types: all sequences together may exceed 2 GiB of text.
        seq = pa.LargeListArray.from_arrays(
            offsets, pc.cast(pa.array(items[k][flat]), pa.large_string())
        )
        bar = pa.scalar("|", pa.large_string())
        text = pc.binary_join(seq, bar).take(at_time)
        rows[f"click_50_seq__{k}"] = pa.chunked_array(
            [text[i : i + CHUNK].cast(pa.string()) for i in range(0, n, CHUNK)],
            pa.string(),
        )
    rows["clk"] = np.ones(n, np.int64)
    rows["sample_weight"] = np.where(rng.random(n) < 0.1, 2.0, 1.0)
    return pa.table(rows)


def summarize(
    items: dict,
    users: dict,
    clicks: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_train: int,
) -> dict[str, float]:
    """Cluster purity of the clicks and reference eval recalls@K: random,
    and the oracle that knows the user's cluster (its top-K items)."""
    user, item, _ = clicks
    same = items["cluster"][item] == users["cluster"][user]
    summary: dict[str, float] = {
        "train_rows": n_train,
        "eval_rows": len(user) - n_train,
        "train_in_cluster": float(same[:n_train].mean()),
        "eval_in_cluster": float(same[n_train:].mean()),
    }
    for k in (1, 5, 50):
        top = same[n_train:] & (items["rank"][item[n_train:]] < k)
        summary[f"oracle_recall@{k}"] = float(top.mean())
        summary[f"random_recall@{k}"] = min(1.0, k / len(items["rank"]))
    return summary
