"""A keyword gate's tuning grid as counts (``tools/tune_detector.py --save-grid``): for every setting of
the grid (smoothing, patience, verification window and threshold) and every keyword threshold, the
keywords caught and the false alarms made over one or more streams, with the streams' keyword count and
length. About 70 KB of JSON for 8 hours of stream instead of the traces' 5.7 MB, so a fold of a k-fold check
can keep its result; grids of other streams (other folds) pool by adding their counts, and ``best_at``
picks a pool's best setting as ``tools/tune_detector.py`` does on joined traces (numpy only)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np

from kws_tf.atomic_write import atomic_path
from kws_tf.config import DetectorConfig, from_dict, to_dict
from kws_tf.evaluate import metrics

FORMAT = "kws_tf gate grid"
Rows = list[tuple[DetectorConfig, list[dict]]]  # per setting, its DET points (metrics.det_points) in threshold order


@dataclasses.dataclass
class GateGrid:
    """``caught`` and ``false_alarms``: ``(settings, thresholds)`` counts; ``keywords`` and ``seconds``:
    what the streams held; ``streams``: where they came from (as saved with the traces)."""

    settings: list[DetectorConfig]
    thresholds: np.ndarray
    caught: np.ndarray
    false_alarms: np.ndarray
    keywords: int
    seconds: float
    streams: list[dict]

    def rows(self) -> Rows:
        """The grid as ``tools/tune_detector.py`` computes it: per setting, one DET point per threshold."""
        hours = max(self.seconds, 1e-9) / 3600.0
        out = []
        for i, cfg in enumerate(self.settings):
            points = [{"threshold": float(th), "recall": float(c) / self.keywords if self.keywords else None,
                       "false_alarms": int(fa), "fa_per_hour": float(fa) / hours}
                      for th, c, fa in zip(self.thresholds, self.caught[i], self.false_alarms[i])]
            out.append((cfg, points))
        return out


def from_rows(rows: Rows, keywords: int, seconds: float, streams: list[dict]) -> GateGrid:
    """Counts of ``rows`` (every setting swept over the same thresholds) on streams with ``keywords``."""
    thresholds = np.array([p["threshold"] for p in rows[0][1]], float)
    if any([p["threshold"] for p in points] != thresholds.tolist() for _, points in rows):
        raise ValueError("every setting of a grid must sweep the same keyword thresholds")
    caught = np.array([[round((p["recall"] or 0.0) * keywords) for p in points] for _, points in rows], int)
    false_alarms = np.array([[p["false_alarms"] for p in points] for _, points in rows], int)
    return GateGrid([cfg for cfg, _ in rows], thresholds, caught, false_alarms, int(keywords), float(seconds), list(streams))


def save_grid(path: str, grid: GateGrid) -> None:
    """Write ``grid`` to ``path`` as JSON (via a temporary file: a failed save leaves nothing under the name)."""
    body = {"format": FORMAT, "keywords": grid.keywords, "seconds": grid.seconds, "streams": grid.streams,
            "thresholds": grid.thresholds.tolist(), "setting_fields": list(to_dict(grid.settings[0])),
            "settings": [list(to_dict(cfg).values()) for cfg in grid.settings],  # one row of values per setting
            "caught": grid.caught.tolist(), "false_alarms": grid.false_alarms.tolist()}
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f, separators=(",", ":"))


def load_grid(path: str) -> GateGrid:
    """A grid saved by ``save_grid``. Raises ``ValueError`` naming the file for anything else (one line)."""
    try:
        with open(path, encoding="utf-8") as f:
            body = json.load(f)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("no gate grid format mark")
        settings = [from_dict(DetectorConfig, dict(zip(body["setting_fields"], row, strict=True))) for row in body["settings"]]
        grid = GateGrid(settings, np.array(body["thresholds"], float), np.array(body["caught"], int),
                        np.array(body["false_alarms"], int), int(body["keywords"]), float(body["seconds"]),
                        list(body.get("streams", [])))
        shape = (len(grid.settings), len(grid.thresholds))
        if grid.caught.shape != shape or grid.false_alarms.shape != shape:
            raise ValueError(f"counts of shape {grid.caught.shape} / {grid.false_alarms.shape} for {shape} settings x thresholds")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a gate grid from tools/tune_detector.py --save-grid ({e}); save it again with --save-grid")
    return grid


def pool(grids: list[GateGrid]) -> GateGrid:
    """One grid of several streams: counts, keywords and seconds added. Raises ``ValueError`` when the
    grids differ in settings or thresholds (tuned with other grids or other sidecar defaults) or two of
    them hold the same stream (it would count twice, and a k-fold check would tune and hold out on it)."""
    first = grids[0]
    for g in grids[1:]:
        if g.settings != first.settings or not np.array_equal(g.thresholds, first.thresholds):
            raise ValueError("the grids sweep different settings or thresholds; save them all with the same "
                             "tools/tune_detector.py and detector defaults")
    seen = set()
    for g in grids:
        for key in {(s["split"], s.get("seed"), s.get("minutes")) for s in g.streams if "split" in s}:
            if key in seen:
                raise ValueError(f"two grids both hold the {key[0]} stream seed {key[1]}: give each stream's grid once")
            seen.add(key)
    return GateGrid(first.settings, first.thresholds, sum(g.caught for g in grids), sum(g.false_alarms for g in grids),
                    sum(g.keywords for g in grids), sum(g.seconds for g in grids), [s for g in grids for s in g.streams])


_FOLD = re.compile(r" fold (\d+)/(\d+)")


def folds_of(grids: list[GateGrid], names: list[str]) -> list[tuple[int, int]]:
    """Each grid's fold ``(K, N)``, read from its streams' split (``"validation fold 2/5"``). Raises
    ``ValueError`` naming the files when a k-fold check would tune and hold out on the same speakers or mix
    checks: a grid without a fold (or of several), two grids of one fold, folds of different N or splits."""
    found = []
    for grid, name in zip(grids, names):
        splits = {s.get("split", ""): _FOLD.search(s.get("split", "")) for s in grid.streams}  # split: its fold mark
        plain = sorted(sp or "no split recorded" for sp, mark in splits.items() if not mark)
        if not splits or plain:
            raise ValueError(f"{name} holds streams of no fold ({', '.join(plain) or 'no stream record'}): each "
                             "grid must be one fold's, saved by tools/tune_detector.py --split validation --fold K/N --save-grid")
        marks = {(_FOLD.sub("", sp), *map(int, mark.groups())) for sp, mark in splits.items()}
        if len(marks) > 1:
            raise ValueError(f"{name} holds streams of {' and '.join(sorted(f'{b} fold {k}/{n}' for b, k, n in marks))}: "
                             "save one grid per fold")
        found.append(marks.pop())
    first_base, first_k, first_n = found[0]
    for (base, k, n), name in zip(found, names):
        if (base, n) != (first_base, first_n):
            raise ValueError(f"{names[0]} is {first_base} fold {first_k}/{first_n} and {name} {base} fold {k}/{n}: "
                             "give the folds of one k-fold split")
    for i, (_, k, n) in enumerate(found):
        for j in range(i):
            if found[j][1] == k:
                raise ValueError(f"{names[j]} and {names[i]} are both fold {k}/{n}: its speakers would be tuned on and "
                                 "held out at once; pool a fold's streams into one grid (tune_detector.py --traces A.npz "
                                 "B.npz --save-grid)")
    return [(k, n) for _, k, n in found]


_MODELS = {"kws_recipe": "keyword model", "words_recipe": "word model"}


def _flat(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_one_recipe(grids: list[GateGrid], names: list[str]) -> list[str]:
    """Refuse grids whose streams came from models of different recipes (a k-fold check of recipe A with
    a fold of recipe B in it): raises ``ValueError`` naming two files and the first value that differs.
    Only values both records hold are compared (a setting added to kws_tf later is no difference). Returns
    the names of grids with a stream saved without its models' recipes (older grids, or models exported by
    hand), which are not checked."""
    seen, unrecorded = {}, []
    for grid, name in zip(grids, names):
        if not grid.streams or any(key not in s for s in grid.streams for key in _MODELS):
            unrecorded.append(name)
        for s in grid.streams:
            for key, model in _MODELS.items():
                for field, value in _flat(s.get(key, {})).items():
                    first, where = seen.setdefault((key, field), (value, name))
                    if value != first:
                        raise ValueError(f"{where}'s {model} was made with {field}={first!r} and {name}'s with "
                                         f"{field}={value!r}: give the grids of one recipe")
    return unrecorded


def best_at(rows: Rows, fa_per_hour: float) -> tuple[float, DetectorConfig] | None:
    """The best ``(recall, setting)`` of ``rows`` at <= ``fa_per_hour`` (None if none meets it); ties go
    to the earlier setting and, within one, to the higher threshold."""
    best = None
    for vcfg, points in rows:
        point = metrics.recall_at_fa(points, fa_per_hour)
        if point["recall"] is not None and (best is None or point["recall"] > best[0]):
            best = (point["recall"], dataclasses.replace(vcfg, threshold=float(point["threshold"])))
    return best


def best_by_pair(rows: Rows, fa_per_hour: float) -> dict[tuple[int, int], float]:
    """Per ``(smoothing_frames, patience_frames)`` of ``rows``, the best recall at <= ``fa_per_hour`` over
    its verification settings (0 where none meets the budget): where in the grid the recall comes from."""
    out: dict[tuple[int, int], float] = {}
    for vcfg, points in rows:
        pair = (vcfg.smoothing_frames, vcfg.patience_frames)
        out[pair] = max(out.get(pair, 0.0), metrics.recall_at_fa(points, fa_per_hour)["recall"] or 0.0)
    return out


def count_at(grid: GateGrid, cfg: DetectorConfig) -> tuple[int, int]:
    """``(caught, false_alarms)`` of ``grid`` at the setting ``cfg`` (one of its settings, at one of its
    thresholds). Raises ``KeyError`` when the grid has no such point."""
    key = dataclasses.replace(cfg, threshold=0.0)
    for i, setting in enumerate(grid.settings):
        if dataclasses.replace(setting, threshold=0.0) == key:
            j = np.flatnonzero(np.isclose(grid.thresholds, cfg.threshold))
            if len(j):
                return int(grid.caught[i, j[0]]), int(grid.false_alarms[i, j[0]])
    raise KeyError(f"no grid point at {to_dict(cfg)}")
