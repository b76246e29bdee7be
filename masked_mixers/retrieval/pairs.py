"""(query, passage) pairs for retrieval, built from a corpus or read from pair files.

A retrieval test is only meaningful if the query cannot be found verbatim in its passage, so the
two self-supervised kinds of pair take the query text out of the document:

- "sentence": one sentence of the document (at least `min_query_words` words) is the query and the
  rest of the document, that sentence removed, is the passage. A sentence that also occurs
  elsewhere in the document is never chosen. With `queries_per_document` k > 1, k different
  sentences are queries of one passage: the document with all k removed.
- "keywords": a few distinct content words (not stopwords, three letters or more) of the
  document, in random order, are the query; the passage is the document with every whole-word
  occurrence of those words deleted. The passage keeps its story but loses the exact terms, so
  the pair tests whether a model ties words to their context rather than string matching. Note
  the price: the positive is then the one passage certain to lack the query's words, so BM25
  ranks it below chance, and a learned model may pick up the gaps; "sentence" pairs are the
  fairer benchmark.

Real pairs come from a .jsonl file with query and passage fields, or from TinyStoriesInstruct's
"Summary:" lines and their stories. Every pair also keeps `doc_id`, its document's index.
Splits are seeded and per-document choices are seeded by (seed, document index), so the same
arguments always give the same files.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.files import atomic_write_jsonl
from .settings import PAIR_KINDS

# Small English stopword list: words too common to say what a document is about.
STOPWORDS = frozenset(
    """a about after again all also am an and any are as at be because been before being but by can
    could did do does doing down for from had has have having he her here hers him his how i if in into
    is it its just me more most my no nor not now of off on once one only or other our out over own
    said same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who why will with would
    you your went got get day time saw see""".split()
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'”])\s+")
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str
    doc_id: int


@dataclass
class PairSplits:
    train: list[Pair]
    test: list[Pair]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, split after . ! ? (and a closing quote), whitespace trimmed."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def sentence_pairs(
    text: str, rng: random.Random, min_query_words: int = 5, queries_per_document: int = 1
) -> list[tuple[str, str]]:
    """Up to `queries_per_document` (sentence, passage) pairs of one document, all with one passage.

    The passage is the document with *every* chosen query sentence removed, so no query of a
    document can be found verbatim in its passage, the document has one passage whichever of its
    queries asks, and its pairs stay one unit (`split_pairs` splits by document). A sentence that
    also occurs elsewhere in the document is never chosen; at least two sentences stay in the passage.
    """
    sentences = split_sentences(text)
    if len(sentences) < 3:
        return []
    order = list(range(len(sentences)))
    rng.shuffle(order)
    chosen = []
    for i in order:
        if len(chosen) == queries_per_document or len(sentences) - len(chosen) <= 2:
            break
        rest = " ".join(sentences[:i] + sentences[i + 1 :])
        if len(sentences[i].split()) >= min_query_words and _norm(sentences[i]) not in _norm(rest):
            chosen.append(i)
    passage = " ".join(s for j, s in enumerate(sentences) if j not in chosen)
    return [(sentences[i], passage) for i in chosen]


def sentence_pair(text: str, rng: random.Random, min_query_words: int = 5) -> tuple[str, str] | None:
    """(one sentence, the rest of the document), or None if no sentence qualifies."""
    made = sentence_pairs(text, rng, min_query_words, 1)
    return made[0] if made else None


def content_words(text: str) -> list[str]:
    """Distinct lowercase content words of `text`, in order of first appearance."""
    words = (w.lower() for w in _WORD.findall(text))
    return list(dict.fromkeys(w for w in words if len(w) >= 3 and w not in STOPWORDS))


def remove_words(text: str, words: Iterable[str]) -> str:
    """`text` with every whole-word, case-insensitive occurrence of `words` deleted."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", pattern.sub("", text)).strip()


def keyword_pair(text: str, rng: random.Random, num_keywords: int = 3) -> tuple[str, str] | None:
    """(a few content words, the document without them), or None if it has too few."""
    words = content_words(text)
    if len(words) < num_keywords + 5:
        return None
    keywords = rng.sample(words, num_keywords)
    return " ".join(keywords), remove_words(text, keywords)


def build_pairs(
    documents: Sequence[str], kind: str = "sentence", seed: int = 0, queries_per_document: int = 1, **options
) -> list[Pair]:
    """Pairs of every usable document (duplicates and documents too short are skipped).

    queries_per_document: "sentence" pairs per document, each a different sentence, all sharing
    the document's passage (see `sentence_pairs`); "keywords" makes one. options: min_query_words
    for "sentence", num_keywords for "keywords".
    """
    if kind not in PAIR_KINDS:
        raise UserError(f"pair kind {kind!r} is unknown (choose from {', '.join(PAIR_KINDS)})")
    if queries_per_document < 1 or (kind != "sentence" and queries_per_document != 1):
        raise UserError(
            f"queries_per_document: {queries_per_document} (at least 1, and only 'sentence' pairs take more than 1)"
        )
    pairs, seen = [], set()
    for doc_id, text in enumerate(documents):
        key = _norm(text)
        if not key or key in seen:
            continue
        seen.add(key)
        rng = random.Random(f"{seed}:{doc_id}")
        if kind == "sentence":
            made = sentence_pairs(text, rng, queries_per_document=queries_per_document, **options)
        else:
            made = [p] if (p := keyword_pair(text, rng, **options)) else []
        pairs.extend(Pair(query, passage, doc_id) for query, passage in made)
    return pairs


def split_pairs(
    pairs: Sequence[Pair], test_fraction: float = 0.2, seed: int = 0, max_test: int | None = None
) -> PairSplits:
    """Split by document: a seeded shuffle of the documents, the first `test_fraction` of them
    (at most `max_test` pairs) are the test split, so a document's pairs never straddle the split.

    With one pair per document this is the same split as shuffling the pairs themselves.
    """
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not pairs:
        raise UserError("no pairs to split: no document gave a pair")
    groups: dict[int, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.doc_id, []).append(pair)
    docs = list(groups)
    random.Random(seed).shuffle(docs)
    n_test = max(1, round(len(docs) * test_fraction))
    test, taken = [], 0
    for doc in docs[:n_test]:
        if max_test and len(test) + len(groups[doc]) > max_test:
            break
        test.extend(groups[doc])
        taken += 1
    return PairSplits(
        train=[p for doc in docs[max(taken, 1) :] for p in groups[doc]], test=test or groups[docs[0]][:max_test]
    )


def passage_index(pairs: Sequence[Pair]) -> tuple[list[str], list[int]]:
    """(distinct passages in order of first appearance, the index of each pair's passage among them).

    Several queries of one document ask for one passage: it is embedded once, and a query's
    negatives are the *other* passages, never a copy of its own.
    """
    index: dict[str, int] = {}
    targets = [index.setdefault(p.passage, len(index)) for p in pairs]
    return list(index), targets


def parse_tinystories_instruct(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(summary, story) pairs from TinyStoriesInstruct's text rows.

    Each record there is a run of rows ("Features: ...", "Words: ...", "Summary: ...", "Story: ",
    story lines...) ended by "<|endoftext|>"; records without a summary or story are skipped.
    """
    pairs, summary, story, in_story = [], None, [], False

    def flush():
        if summary and any(s.strip() for s in story):
            pairs.append((summary, "\n".join(story).strip()))

    for line in lines:
        if line.strip() == "<|endoftext|>":
            flush()
            summary, story, in_story = None, [], False
        elif line.startswith("Summary:"):
            summary, in_story = line[len("Summary:") :].strip(), False
        elif line.startswith("Story:"):
            in_story, story = True, [line[len("Story:") :].strip()]
        elif in_story:
            story.append(line)
    flush()
    return pairs


def load_tinystories_instruct(
    source: str = "roneneldan/TinyStoriesInstruct", split: str = "validation", max_pairs: int | None = None
) -> list[Pair]:
    """Summary -> story pairs from the hub (streamed: the dataset is one row per line of text)."""
    import datasets

    rows = (row["text"] for row in datasets.load_dataset(source, split=split, streaming=True))
    found = []
    for i, (summary, story) in enumerate(parse_tinystories_instruct(rows)):
        if max_pairs and len(found) >= max_pairs:
            break
        found.append(Pair(summary, story, i))
    return found


def read_pairs(path: str | Path, query_field: str = "query", passage_field: str = "passage") -> list[Pair]:
    """Pairs from a .jsonl file, one object per line with the two named fields."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: pair file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start})") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            query, passage = record[query_field], record[passage_field]
        except json.JSONDecodeError:
            raise UserError(f"{path}:{number}: not a JSON object") from None
        except (KeyError, TypeError):
            raise UserError(f"{path}:{number}: needs string fields {query_field!r} and {passage_field!r}") from None
        if not isinstance(query, str) or not isinstance(passage, str):
            raise UserError(f"{path}:{number}: fields {query_field!r} and {passage_field!r} must be strings")
        blank = next(
            (field for field, value in ((query_field, query), (passage_field, passage)) if not value.strip()), None
        )
        if blank is not None:  # no tokens to embed: a pair needs text on both sides
            raise UserError(f"{path}:{number}: field {blank!r} is empty")
        doc_id = record.get("doc_id", number - 1)
        if not isinstance(doc_id, int) or isinstance(doc_id, bool):
            raise UserError(f"{path}:{number}: field 'doc_id' must be an integer, got {doc_id!r}")
        pairs.append(Pair(query, passage, doc_id))
    if not pairs:
        raise UserError(f"{path}: no pairs in the file")
    return pairs


def write_pairs(path: str | Path, pairs: Iterable[Pair]) -> None:
    """Write pairs as .jsonl, atomically."""
    atomic_write_jsonl(path, (asdict(p) for p in pairs), ensure_ascii=False)


def save_splits(out_dir: str | Path, splits: PairSplits) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    paths = out_dir / "train.jsonl", out_dir / "test.jsonl"
    write_pairs(paths[0], splits.train)
    write_pairs(paths[1], splits.test)
    return paths


def load_splits(pairs_dir: str | Path) -> PairSplits:
    """The train.jsonl and test.jsonl that `save_splits` (the `pairs` command) wrote."""
    pairs_dir = Path(pairs_dir)
    if not pairs_dir.is_dir():
        raise UserError(f"{pairs_dir}: pairs directory not found (make one with `masked-mixers pairs`)")
    return PairSplits(train=read_pairs(pairs_dir / "train.jsonl"), test=read_pairs(pairs_dir / "test.jsonl"))
