"""Read a corpus into a memory-mapped `datasets.Dataset` with one "text" column.

A source is a Hugging Face dataset id (e.g. roneneldan/TinyStories) or one or more local files:
.txt (documents separated by `<|endoftext|>` markers, or by blank lines when the file has no
marker), .jsonl / .json (one record per document, text in `text_field`) and .parquet. Local files
are streamed into Arrow by datasets' own builders, never read whole into memory, so a corpus
larger than RAM works. Every problem a user can fix (missing, empty, undecodable or unsupported
file, absent text field) is a `UserError` naming the file.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets

from ..core.errors import UserError, reason

EOT_MARKER = "<|endoftext|>"
TEXT_SUFFIXES = (".txt",)
JSON_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + JSON_SUFFIXES + PARQUET_SUFFIXES
_CHUNK = 1 << 22  # 4 MiB: file scans read this much at a time
TEXT_FEATURES = datasets.Features({"text": datasets.Value("string")})


def _looks_like_path(text: str) -> bool:
    return (
        Path(text).suffix.lower() in SUPPORTED_SUFFIXES
        or text.startswith(("/", "./", "../", "~"))
        or os.path.exists(os.path.expanduser(text))
    )


def resolve_source(source: str | Sequence[str]) -> list[Path] | str:
    """Local files as checked absolute paths, or the hub id unchanged.

    A string is taken as a path when it exists, has a corpus file suffix or starts like a path;
    anything else is a Hugging Face dataset id.
    """
    if isinstance(source, (str, os.PathLike)):
        if not _looks_like_path(str(source)):
            return str(source)
        source = [source]
    if not source:
        raise UserError("data.source: no corpus files given")
    paths = []
    for item in source:
        try:
            path = Path(item).expanduser().resolve()
        except (OSError, RuntimeError) as err:  # a symlink loop: RuntimeError before Python 3.13, OSError since
            raise UserError(f"{item}: corpus path cannot be resolved ({reason(err)})") from None
        if not path.is_file():
            raise UserError(f"{item}: corpus file not found")
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise UserError(
                f"{item}: unsupported corpus file type {path.suffix!r} (use {', '.join(SUPPORTED_SUFFIXES)})"
            )
        paths.append(path)
    return paths


def file_identity(path: Path) -> dict:
    """What identifies a file's content cheaply: absolute path, size and modification time."""
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def corpus_identity(source: str | Sequence[str], split: str, config_name: str | None = None) -> dict:
    """The part of a cache fingerprint that says which corpus was read."""
    resolved = resolve_source(source)
    if isinstance(resolved, str):
        return {"hub": resolved, "split": split, **({"config_name": config_name} if config_name else {})}
    return {"files": [file_identity(p) for p in resolved]}


def _scan_text_file(path: Path) -> bool:
    """Check that `path` is UTF-8 throughout (streamed, not loaded); True if it holds EOT_MARKER."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    marker = EOT_MARKER.encode()
    found, offset, tail = False, 0, b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise UserError(f"{path}: not valid UTF-8 text (byte {offset + err.start})") from None
            found = found or marker in tail + chunk
            tail, offset = chunk[-len(marker) :], offset + len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid UTF-8 text (truncated character at the end)") from None
    return found


def _lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 file, streamed. The file was checked (_scan_text_file), so bytes that are
    not UTF-8 mean it changed while being read: one line naming the file and where, not a traceback."""
    number = 0
    with open(path, encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, 1):  # noqa: B007 (read after the loop, by the except below)
                yield line
        except UnicodeDecodeError:
            raise UserError(
                f"{path}: not valid UTF-8 text at or after line {number + 1} (did the file change while being read?)"
            ) from None


def _txt_documents(path: str, by_marker: bool, limit: int | None, identity: dict) -> Iterator[dict]:
    """Yield {"text": document} from a .txt file, streaming line by line.

    `identity` (size, mtime) is unused here but part of the arguments datasets hashes, so an
    edited file is never served from datasets' generator cache.
    """
    count, lines = 0, []
    for line in _lines(path):
        # pieces of this line, each but the first starting a new document
        pieces = line.split(EOT_MARKER) if by_marker else ([line] if line.strip() else ["", ""])
        for i, piece in enumerate(pieces):
            if i:
                text = "".join(lines).strip()
                lines.clear()
                if text:
                    yield {"text": text}
                    count += 1
                    if limit is not None and count >= limit:
                        return
            lines.append(piece)
    if text := "".join(lines).strip():
        yield {"text": text}


def _from_generator(generator, kwargs: dict) -> datasets.Dataset:
    """datasets' Dataset.from_generator; a UserError the generator raised comes out as itself, not
    wrapped in datasets' DatasetGenerationError."""
    try:
        return datasets.Dataset.from_generator(generator, gen_kwargs=kwargs, features=TEXT_FEATURES)
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise


def _no_documents() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": []}, features=TEXT_FEATURES)


def _load_txt(path: Path, max_documents: int | None) -> datasets.Dataset:
    kwargs = {
        "path": str(path),
        "by_marker": _scan_text_file(path),
        "limit": max_documents,
        "identity": file_identity(path),
    }
    if next(_txt_documents(**kwargs), None) is None:  # datasets cannot build a table from no rows
        return _no_documents()
    return _from_generator(_txt_documents, kwargs)


def _json_records(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, record) of a JSON Lines file, or of a .json file holding one array/object.

    Parsed with Python's json module, streamed line by line: pyarrow's JSON reader (behind
    datasets' "json" builder) crashed the whole process (segfault) on some malformed files
    found by fuzzing, and a crash cannot be turned into a one-line error.
    """
    if path.suffix.lower() == ".json":
        try:
            with path.open(encoding="utf-8") as handle:
                document = json.load(handle)
            yield from ((1, r) for r in (document if isinstance(document, list) else [document]))
            return
        except json.JSONDecodeError:
            pass  # not one JSON document: read it as JSON Lines
        except UnicodeDecodeError:
            raise UserError(f"{path}: not valid UTF-8 text (did the file change while being read?)") from None
    for number, line in enumerate(_lines(path), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}: line {number} is not valid JSON ({err.msg})") from None


def _json_text(path: Path, number: int, record: object, text_field: str) -> str | None:
    if not isinstance(record, dict):
        raise UserError(
            f"{path}: line {number} is a JSON {type(record).__name__}, not an object with a {text_field!r} field"
        )
    if text_field not in record:
        fields = ", ".join(map(str, record)) or "none"
        raise UserError(f"{path}: no text field {text_field!r} (fields: {fields}); set data.text_field")
    text = record[text_field]
    if text is not None and not isinstance(text, str):
        raise UserError(f"{path}: field {text_field!r} holds {type(text).__name__}, not text (line {number})")
    return text


def _json_documents(path: str, text_field: str, identity: dict) -> Iterator[dict]:
    """Yield {"text": ...} per record; `identity` only keys datasets' generator cache (see _txt_documents)."""
    path = Path(path)  # once, not per record
    for number, record in _json_records(path):
        yield {"text": _json_text(path, number, record, text_field)}


def _load_json(path: Path, text_field: str) -> datasets.Dataset:
    """A .jsonl/.json file: validated in one streamed pass, then written to Arrow by a generator."""
    _scan_text_file(path)
    count = 0
    for number, record in _json_records(path):  # every bad record is reported before anything is written
        _json_text(path, number, record, text_field)
        count += 1
    if count == 0:
        return _no_documents()
    kwargs = {"path": str(path), "text_field": text_field, "identity": file_identity(path)}
    return _from_generator(_json_documents, kwargs)


def _load_parquet(path: Path, text_field: str) -> datasets.Dataset:
    """A .parquet file through datasets' builder, reduced to its text column."""
    if path.stat().st_size == 0:
        return _no_documents()
    try:
        table = datasets.load_dataset("parquet", data_files=[str(path)], split="train")
    except Exception as err:  # the builder raises many types; all mean "this file cannot be read"
        raise UserError(f"{path}: could not read as parquet ({reason(err)})") from None
    return _text_column(table, text_field, str(path))


def _text_column(table: datasets.Dataset, text_field: str, where: str) -> datasets.Dataset:
    if text_field not in table.column_names:
        raise UserError(
            f"{where}: no text field {text_field!r} (fields: {', '.join(table.column_names)}); set data.text_field"
        )
    feature = table.features[text_field]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise UserError(f"{where}: field {text_field!r} holds {feature}, not text")
    table = table.select_columns([text_field])
    return table.rename_column(text_field, "text") if text_field != "text" else table


def _load_hub(name: str, split: str, text_field: str, config_name: str | None = None) -> datasets.Dataset:
    try:
        table = datasets.load_dataset(name, config_name, split=split)
    except Exception as err:  # network, unknown id, unknown split: all fixable by the user
        raise UserError(f"{name}: could not load Hugging Face dataset split {split!r} ({reason(err)})") from None
    return _text_column(table, text_field, f"{name}[{split}]")


def _has_text(batch: dict) -> list[bool]:
    return [bool(text and text.strip()) for text in batch["text"]]


def _lowercase(batch: dict) -> dict:
    return {"text": [text.lower() for text in batch["text"]]}


def load_corpus(
    source: str | Sequence[str] = "roneneldan/TinyStories",
    split: str = "train",
    text_field: str = "text",
    lowercase: bool = False,
    max_documents: int | None = None,
    config_name: str | None = None,
) -> datasets.Dataset:
    """Documents of `source` as a memory-mapped Dataset with one "text" column.

    `split` and `config_name` apply to hub datasets only (local files are one split). Empty
    documents are dropped; `max_documents` keeps the first n, in file order. prepare_data streams
    instead (stream.py); this is for callers that want the documents at hand.
    """
    resolved = resolve_source(source)
    if isinstance(resolved, str):
        parts, where = [_load_hub(resolved, split, text_field, config_name)], f"{resolved}[{split}]"
    else:
        parts, where = [], ", ".join(str(p) for p in resolved)
        for path in resolved:
            suffix = path.suffix.lower()
            if suffix in TEXT_SUFFIXES:
                parts.append(_load_txt(path, max_documents))
            else:
                parts.append(
                    _load_json(path, text_field) if suffix in JSON_SUFFIXES else _load_parquet(path, text_field)
                )
    corpus = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    corpus = corpus.filter(_has_text, batched=True, desc="dropping empty documents")
    if len(corpus) == 0:
        raise UserError(f"{where}: empty corpus (no documents with text)")
    if max_documents is not None:
        corpus = corpus.select(range(min(max_documents, len(corpus))))
    if lowercase:
        corpus = corpus.map(_lowercase, batched=True, desc="lowercasing")
    return corpus
