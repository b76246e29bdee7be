"""Documents as a stream: one text at a time, in a fixed order, never the whole corpus in memory.

prepare_data reads corpora through here so that preparation starts at once, holds bounded
memory and can be cut at a token budget. Hub datasets and local .parquet files go through
`datasets.load_dataset(..., streaming=True)` (one code path: a hub dataset is parquet files too);
.txt and .jsonl/.json use corpus.py's own line-by-line readers, which report a bad record as a
UserError naming the file and line (pyarrow's JSON reader crashed on some malformed files).

`labelled_documents` assigns each document to train or eval deterministically from its position
in the stream, which a streamed corpus (unlike an in-memory one) allows without a shuffle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import datasets

from ..core.errors import UserError, reason
from ..runs.config import DataConfig
from .corpus import JSON_SUFFIXES, TEXT_SUFFIXES, _json_documents, _scan_text_file, _txt_documents, resolve_source


def _guarded(records: Iterable[dict], text_field: str, where: str) -> Iterator[str | None]:
    """The text field of each streamed record; reading errors become one UserError naming `where`."""
    iterator = iter(records)
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except UserError:
            raise
        except Exception as err:  # network, corrupt file: the builders raise many types
            raise UserError(f"{where}: could not read ({reason(err)})") from None
        if text_field not in record:
            raise UserError(f"{where}: no text field {text_field!r} (fields: {', '.join(record)}); set data.text_field")
        text = record[text_field]
        if text is not None and not isinstance(text, str):
            raise UserError(f"{where}: field {text_field!r} holds {type(text).__name__}, not text")
        yield text


def _streamed(path: str, name: str | None, split: str, where: str, **kwargs) -> datasets.IterableDataset:
    try:
        return datasets.load_dataset(path, name, split=split, streaming=True, **kwargs)
    except Exception as err:  # unknown id, unknown split or config, no network, unreadable file
        raise UserError(f"{where}: could not load ({reason(err)})") from None


def _file_texts(path: Path, text_field: str) -> Iterator[str | None]:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        yield from (r["text"] for r in _txt_documents(str(path), _scan_text_file(path), None, {}))
    elif suffix in JSON_SUFFIXES:
        _scan_text_file(path)
        yield from (r["text"] for r in _json_documents(str(path), text_field, {}))
    elif path.stat().st_size:  # parquet, through datasets' streaming builder like a hub dataset
        yield from _guarded(
            _streamed("parquet", None, "train", str(path), data_files=[str(path)]), text_field, str(path)
        )


def stream_texts(
    source: str | list[str],
    split: str = "train",
    text_field: str = "text",
    config_name: str | None = None,
    lowercase: bool = False,
    max_documents: int | None = None,
) -> Iterator[str]:
    """Non-empty documents of a hub dataset (streamed) or of local files, in order; the first
    `max_documents` of them when given."""
    resolved = resolve_source(source)
    if isinstance(resolved, str):
        where = f"{resolved}[{split}]" + (f" ({config_name})" if config_name else "")
        texts = _guarded(_streamed(resolved, config_name, split, where), text_field, where)
    else:
        texts = chain.from_iterable(_file_texts(path, text_field) for path in resolved)
    if max_documents is not None and max_documents <= 0:
        return
    count = 0
    for text in texts:
        if not text or not text.strip():
            continue
        yield text.lower() if lowercase else text
        count += 1
        if max_documents is not None and count >= max_documents:
            return


def eval_stride(eval_fraction: float) -> int:
    """Every stride-th document is held out (the first one included), about eval_fraction of them."""
    return max(2, round(1 / eval_fraction))


def labelled_documents(data: DataConfig) -> Iterator[tuple[str, str]]:
    """("train" | "eval", text) for every document preparation reads, in a fixed order.

    With data.eval_source, its documents (up to max_eval_documents) come first, then the
    training corpus. Otherwise document i of the corpus is held out when i % stride == 0
    (eval_stride) until max_eval_documents are held out; all others train.
    """
    options = dict(text_field=data.text_field, lowercase=data.lowercase, config_name=data.config_name)
    train = stream_texts(data.source, split=data.split, max_documents=data.max_documents, **options)
    if data.eval_source is not None:
        held_out = stream_texts(
            data.eval_source, split=data.eval_split, max_documents=data.max_eval_documents, **options
        )
        yield from (("eval", text) for text in held_out)
        yield from (("train", text) for text in train)
        return
    stride, held, cap = eval_stride(data.eval_fraction), 0, data.max_eval_documents
    for i, text in enumerate(train):
        if i % stride == 0 and (cap is None or held < cap):
            held += 1
            yield "eval", text
        else:
            yield "train", text
