"""Documents for building pairs, read by the project's one corpus loader (`masked_mixers.data`)."""

from __future__ import annotations

from ..data import load_corpus


def load_documents(
    source: str,
    split: str = "train",
    text_field: str = "text",
    lowercase: bool = False,
    max_documents: int | None = None,
) -> list[str]:
    """The texts of a corpus, in corpus order (pair building needs random access to whole documents)."""
    dataset = load_corpus(source, split=split, text_field=text_field, lowercase=lowercase, max_documents=max_documents)
    return list(dataset["text"])
