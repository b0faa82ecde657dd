"""A user's own labelled data as a training task: the `data:` mapping of a training config.

    data:
      format: image-folder      # or npz; jsonl / csv for texts (text_field + label_field, or
                                # query_field + positive_field for pairs), trained with backbone minilm;
                                # collection (address, collection, label_field): a server's kept inputs
      feedback: true            # collection only: also mine hard negatives from its feedback log, for
                                # fine-tuning with init_from (feedback_weight, feedback_margin,
                                # feedback_negatives: above | all)
      path: /data/glyphs        # one subfolder per class (nested folders: the class is the path)
      image_size: 28            # resize to this square size (0: keep; then every image must match)
      grayscale: true           # one channel (false: three, RGB)
      split: class              # "class": unseen classes are the test (the default for folders);
                                # "item": each class's items are split (the default for npz)
      test_fraction: 0.2        # of the classes (split: class) or of each class's items (split: item)

Why unseen classes by default for folders: a retrieval system embeds items of classes it was never
trained on (new products, new people), so a test on held-out classes says whether the encoder learned
a similarity or memorised classes. Within the test classes a quarter of each class's items query the
rest. Validation (early stopping) is carved the same way out of the training part.

Bad data ends with one line naming the problem: an unreadable file (named), an empty folder, a class
with a single item, images of different sizes without `image_size`, an npz without `x` and `y`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.encoder.data import Retrieval, Task

FORMATS = ("image-folder", "npz", "jsonl", "csv", "collection")
TEXT_FORMATS = ("jsonl", "csv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("class", "item")
FEEDBACK_NEGATIVES = ("above", "all")  # encoder/feedback.py: shown above the chosen item, or every one shown
MAX_IMAGE_SIZE = 512


class DataError(ValueError):
    """The user's data cannot be used as given; the message names the file or class and the fix."""


@dataclass(frozen=True, kw_only=True)
class DataSource:
    format: str
    path: str = ""  # the folder or file (every format but collection)
    image_size: int = 0
    grayscale: bool = True
    split: str = ""  # "" = the format's default
    test_fraction: float = 0.2
    # jsonl / csv: one text and its label per row, or a (query, positive) pair per row
    text_field: str = "text"
    label_field: str = "label"
    query_field: str = ""  # set both query_field and positive_field for pairs
    positive_field: str = ""
    # collection: a running server's collection bound to an encoder, its kept raw inputs labelled by a payload
    # field (the API key comes from $SIMSEARCH_API_KEY, never from the file)
    address: str = ""
    collection: str = ""
    # collection: also learn from its feedback log (encoder/feedback.py): triplets (query, chosen, shown and
    # passed over) whose negative the starting model puts within feedback_margin of the chosen item, in a
    # triplet-margin term of this weight; negatives "above" the chosen one only, or "all" shown
    feedback: bool = False
    feedback_weight: float = 1.0
    feedback_margin: float = 0.2
    feedback_negatives: str = "above"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"data.format must be one of {list(FORMATS)}, got {self.format!r}")
        if self.format == "collection":
            if not self.address or not self.collection:
                raise ValueError("data.format collection needs data.address (host:port) and data.collection; "
                                 "data.label_field names the payload field holding each point's label")
        elif not self.path:
            raise ValueError("data.path must name a folder or file")
        if not 0 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"data.image_size must be 0 (keep) or in [1, {MAX_IMAGE_SIZE}], got {self.image_size}")
        if self.split and self.split not in SPLITS:
            raise ValueError(f"data.split must be one of {list(SPLITS)}, got {self.split!r}")
        if not 0.05 <= self.test_fraction <= 0.8:
            raise ValueError(f"data.test_fraction must be in [0.05, 0.8], got {self.test_fraction}")
        if bool(self.query_field) != bool(self.positive_field):
            raise ValueError("data.query_field and data.positive_field go together (a pair per row)")
        if self.feedback and self.format != "collection":
            raise ValueError(f"data.feedback reads a collection's feedback log: it needs format collection, "
                             f"not {self.format!r}")
        if not 0.0 < self.feedback_weight <= 100.0:
            raise ValueError(f"data.feedback_weight must be in (0, 100], got {self.feedback_weight}")
        if not 0.0 < self.feedback_margin <= 2.0:
            raise ValueError(f"data.feedback_margin must be in (0, 2] (distances between unit vectors), "
                             f"got {self.feedback_margin}")
        if self.feedback_negatives not in FEEDBACK_NEGATIVES:
            raise ValueError(f"data.feedback_negatives must be one of {list(FEEDBACK_NEGATIVES)}, "
                             f"got {self.feedback_negatives!r}")
        if self.query_field and self.format not in TEXT_FORMATS:
            raise ValueError(f"data.query_field is for texts (jsonl, csv), not {self.format!r}")

    @property
    def kind(self) -> str:
        """What the rows hold: "text" (embedded by frozen MiniLM, trained with backbone minilm), "image", or
        "" (a collection: known once read)."""
        if self.format == "collection":
            return ""
        return "text" if self.format in TEXT_FORMATS else "image"

    @property
    def split_by(self) -> str:
        return self.split or ("class" if self.format == "image-folder" else "item")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSource":
        if not isinstance(data, dict):
            raise ValueError(f"data must be a mapping (format, path, ...), got {type(data).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown data keys {unknown}; allowed: {sorted(allowed)}")
        if "format" not in data:
            raise ValueError(f"data.format is required: one of {list(FORMATS)}")
        return cls(**data)


def read_image_folder(root: Path, image_size: int = 0, grayscale: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 images (N, C, H, W), labels (N,), class names): every image file under `root`, its class the
    folder path relative to root ("a/b" for nested folders), converted to `image_size` (square) and one or
    three channels."""
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    files = [p for p in files if p.parent != root]  # a class is a folder: files at the top have none
    if not files:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in class subfolders; put each class's "
                        f"images in a folder of their own under it")
    names = sorted({p.parent.relative_to(root).as_posix() for p in files})
    index = {n: i for i, n in enumerate(names)}
    mode = "L" if grayscale else "RGB"
    images, labels, first_size = [], [], None
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert(mode)
                if image_size:
                    im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
                elif first_size is None:
                    first_size = (im.size, p)
                elif im.size != first_size[0]:
                    raise DataError(f"{p}: {im.size[0]}x{im.size[1]} pixels, but {first_size[1]} is "
                                    f"{first_size[0][0]}x{first_size[0][1]}; set data.image_size to resize them all")
                a = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{p}: cannot be read as an image ({type(e).__name__}: {e})") from None
        images.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        labels.append(index[p.parent.relative_to(root).as_posix()])
    return np.stack(images), np.asarray(labels, dtype=np.int64), names


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """x: uint8 images (N, H, W) or (N, C, H, W); y: labels (any values, one per image)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise DataError(f"{path}: needs arrays 'x' (images) and 'y' (labels), has {sorted(z.files)}")
            x, y = z["x"], z["y"]
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: cannot be read as .npz ({type(e).__name__}: {e})") from None
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.dtype != np.uint8 or x.shape[1] not in (1, 3):
        raise DataError(f"{path}: x must be uint8 images (N, H, W) or (N, 1|3, H, W), got {x.dtype} {x.shape}")
    if len(y) != len(x):
        raise DataError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
    names, labels = np.unique(y, return_inverse=True)
    return x, labels.astype(np.int64), [str(n) for n in names]


def _check_classes(y: np.ndarray, names: list[str], where: str) -> None:
    counts = np.bincount(y, minlength=len(names))
    single = [names[i] for i in np.flatnonzero(counts < 2)]
    if single:
        raise DataError(f"{where}: class {single[0]!r} has a single item{f' (and {len(single) - 1} more)' if len(single) > 1 else ''}; "
                        f"retrieval needs at least 2 per class")
    if len(names) < 4:
        raise DataError(f"{where}: {len(names)} classes; at least 4 are needed to train and test")


def _queries_and_refs(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Retrieval:
    """A quarter of each class's items (at least one) query the rest."""
    q_idx, r_idx = [], []
    for c in np.unique(y):
        items = rng.permutation(np.flatnonzero(y == c))
        n_q = max(1, len(items) // 4)
        q_idx.extend(items[:n_q])
        r_idx.extend(items[n_q:])
    q_idx, r_idx = np.asarray(q_idx), np.asarray(r_idx)
    return Retrieval(x[q_idx], y[q_idx], x[r_idx], y[r_idx])


def _dense(y: np.ndarray) -> np.ndarray:
    return np.unique(y, return_inverse=True)[1].astype(np.int64)


def task_from_arrays(name: str, x: np.ndarray, y: np.ndarray, split: str, test_fraction: float,
                     val_fraction: float, seed: int, kind: str = "image") -> Task:
    """Train / validation / test parts of labelled items (uint8 images, or text embeddings), by class
    (unseen classes) or by item."""
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(y))
    if split == "class":
        n_test = max(2, round(len(classes) * test_fraction))
        n_val = max(2, round((len(classes) - n_test) * val_fraction))
        if len(classes) - n_test - n_val < 2:
            raise DataError(f"{name}: {len(classes)} classes are too few to hold out {n_test} for the test and "
                            f"{n_val} for validation; add classes or use data.split: item")
        test_c, val_c = classes[:n_test], classes[n_test:n_test + n_val]
        test_m, val_m = np.isin(y, test_c), np.isin(y, val_c)
        fit_m = ~(test_m | val_m)
        test = _queries_and_refs(x[test_m], y[test_m], rng)
        val = _queries_and_refs(x[val_m], y[val_m], rng)
        fit_x, fit_y = x[fit_m], _dense(y[fit_m])
    else:
        test_i, val_i, fit_i = [], [], []
        for c in classes:
            items = rng.permutation(np.flatnonzero(y == c))
            n_test = max(1, round(len(items) * test_fraction))
            n_val = max(1, round((len(items) - n_test) * val_fraction)) if len(items) - n_test > 2 else 0
            test_i.extend(items[:n_test])
            val_i.extend(items[n_test:n_test + n_val])
            fit_i.extend(items[n_test + n_val:])
        test_i, val_i, fit_i = map(np.asarray, (test_i, val_i, fit_i))
        if len(val_i) == 0:
            raise DataError(f"{name}: too few items per class for a validation part; add items or use data.split: class")
        test = Retrieval(x[test_i], y[test_i], x[fit_i], y[fit_i])  # new items of known classes
        val = Retrieval(x[val_i], y[val_i], x[fit_i], y[fit_i])
        fit_x, fit_y = x[fit_i], y[fit_i]
    if kind == "text":
        return Task(name, "text", fit_x, fit_y, val, test)
    scaled = fit_x.astype(np.float32) / 255.0
    return Task(name, "image", fit_x, fit_y, val, test, float(scaled.mean()), float(scaled.std()))


def read_text_rows(path: Path, fmt: str, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The named fields of every row of a JSONL file (one object per line) or a CSV file with a header."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows: list[tuple[str, ...]] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            if fmt == "csv":
                reader = csv.DictReader(f)
                missing = [k for k in fields if k not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(f"{path}: no column {missing[0]!r} in the header {reader.fieldnames}")
                records = ((reader.line_num, r) for r in reader)
            else:
                records = ((n, _json_line(path, n, line)) for n, line in enumerate(f, 1) if line.strip())
            for n, record in records:
                values = tuple(record.get(k) for k in fields)
                if any(not isinstance(v, (str, int)) or v == "" for v in values):
                    raise DataError(f"{path}:{n}: needs non-empty {' and '.join(repr(k) for k in fields)}, got "
                                    f"{json.dumps({k: record.get(k) for k in fields})[:200]}")
                rows.append(tuple(str(v) for v in values))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _json_line(path: Path, n: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{n}: not a JSON object ({e.msg})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}:{n}: not a JSON object")
    return record


def _text_pairs_task(name: str, queries: list[str], positives: list[str], test_fraction: float,
                     val_fraction: float, seed: int) -> Task:
    """(query, positive) pairs: label = the pair, so each query has one relevant document; the test and
    validation pairs are never trained on."""
    from simsearch.encoder.minilm import embed_texts

    n = len(queries)
    if n < 20:
        raise DataError(f"{name}: {n} pairs; at least 20 are needed to train and test")
    q, d = embed_texts(queries), embed_texts(positives)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(2, round(n * test_fraction))
    n_val = max(2, round((n - n_test) * val_fraction))
    test, val, fit = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    labels = np.arange(n, dtype=np.int64)
    dense = np.arange(len(fit), dtype=np.int64)
    return Task(name, "text", np.concatenate([q[fit], d[fit]]), np.concatenate([dense, dense]),
                Retrieval(q[val], labels[val], d[val], labels[val]), Retrieval(q[test], labels[test], d[test], labels[test]))


def task_from_inputs(name: str, kind: str, inputs: np.ndarray | list[str], labels: list[str], split: str,
                     test_fraction: float, val_fraction: float, seed: int) -> Task:
    """Labelled raw inputs read elsewhere (a collection's kept inputs, by the CLI through the SDK): uint8
    images (N, C, H, W) or texts."""
    names, y = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    y = y.astype(np.int64)
    _check_classes(y, [str(n) for n in names], name)
    if kind == "text":
        from simsearch.encoder.minilm import embed_texts

        return task_from_arrays(name, embed_texts(list(inputs)), y, split, test_fraction, val_fraction, seed,
                                kind="text")
    return task_from_arrays(name, np.asarray(inputs), y, split, test_fraction, val_fraction, seed)


def load_source(source: DataSource, *, val_fraction: float, seed: int) -> Task:
    if source.format == "collection":
        raise DataError("data.format collection is read from a running server by `simsearch train` and "
                        "`simsearch eval` (the CLI), not here")
    path = Path(source.path).expanduser()
    name = f"{source.format}:{path.name}"
    if source.format in TEXT_FORMATS and source.query_field:
        rows = read_text_rows(path, source.format, (source.query_field, source.positive_field))
        return _text_pairs_task(name, [r[0] for r in rows], [r[1] for r in rows], source.test_fraction,
                                val_fraction, seed)
    if source.format in TEXT_FORMATS:
        from simsearch.encoder.minilm import embed_texts

        rows = read_text_rows(path, source.format, (source.text_field, source.label_field))
        names, y = np.unique([r[1] for r in rows], return_inverse=True)
        _check_classes(y.astype(np.int64), [str(c) for c in names], str(path))
        x = embed_texts([r[0] for r in rows])
        return task_from_arrays(name, x, y.astype(np.int64), source.split_by, source.test_fraction, val_fraction,
                                seed, kind="text")
    if source.format == "image-folder":
        x, y, names = read_image_folder(path, source.image_size, source.grayscale)
    else:
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        x, y, names = read_npz(path)
        if source.image_size and x.shape[2:] != (source.image_size, source.image_size):
            raise DataError(f"{path}: images are {x.shape[3]}x{x.shape[2]}; npz images are used as stored "
                            f"(leave data.image_size out, or resize them before saving)")
        if source.grayscale != (x.shape[1] == 1):
            raise DataError(f"{path}: images have {x.shape[1]} channel(s) but data.grayscale is {source.grayscale}")
    _check_classes(y, names, str(path))
    return task_from_arrays(name, x, y, source.split_by, source.test_fraction, val_fraction, seed)
