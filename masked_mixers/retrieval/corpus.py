"""Documents for building pairs: the data interface's `load_corpus` when it is available.

`masked_mixers.data.load_corpus` (the data package) is the one corpus loader of the project.
Until it lands, `_load_corpus_minimal` reads the same sources through `datasets` so that the
`pairs` command works; delete it once `masked_mixers.data` is on main.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

try:
    from ..data import load_corpus
except ImportError:  # masked_mixers.data not merged yet
    load_corpus = None


def _load_corpus_minimal(source: str, split: str = "train", text_field: str = "text", lowercase: bool = False, max_documents: int | None = None):
    """A local .jsonl/.json/.parquet/.txt file (a .txt file: one document per blank-line paragraph) or a hub id."""
    import datasets

    path = Path(source)
    builders = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text"}
    if path.suffix in builders:
        if not path.is_file():
            raise UserError(f"{source}: corpus file not found")
        extra = {"sample_by": "paragraph"} if path.suffix == ".txt" else {}
        dataset = datasets.load_dataset(builders[path.suffix], data_files=str(path), split="train", **extra)
    else:
        dataset = datasets.load_dataset(source, split=split)
    if text_field not in dataset.column_names:
        raise UserError(f"{source}: no text field {text_field!r} (fields: {', '.join(dataset.column_names)})")
    if max_documents:
        dataset = dataset.select(range(min(max_documents, len(dataset))))
    if lowercase:
        dataset = dataset.map(lambda row: {text_field: row[text_field].lower()})
    return dataset.rename_column(text_field, "text") if text_field != "text" else dataset


def load_documents(source: str, split: str = "train", text_field: str = "text", lowercase: bool = False, max_documents: int | None = None) -> list[str]:
    """The texts of a corpus, in corpus order."""
    loader = load_corpus or _load_corpus_minimal
    dataset = loader(source, split=split, text_field=text_field, lowercase=lowercase, max_documents=max_documents)
    return list(dataset["text"])
