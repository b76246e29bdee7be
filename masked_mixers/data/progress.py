"""Progress of a preparation in tokens: tokens/s and, where the end can be estimated, an ETA.

The end is known when data.max_tokens caps the run; for local files it is estimated from their
size and the tokens per text byte seen so far (JSON field names and escapes make it an
over-estimate); a streamed hub corpus of unknown size shows the rate only.
"""

from __future__ import annotations

from ..core.progress import progress_bar


class PrepareProgress:
    """A tqdm bar counting tokens of both splits; shards reused from an earlier run count at once."""

    def __init__(self, enabled: bool, max_tokens: int | None = None, source_bytes: int | None = None):
        self.max_tokens, self.source_bytes = max_tokens, source_bytes
        self.text_bytes = self.tokens = 0
        self.bar = progress_bar(
            total=max_tokens, unit="tok", unit_scale=True, desc="preparing", disable=not enabled, dynamic_ncols=True
        )

    def __call__(self, record, reused: bool) -> None:
        counts = record.counts
        tokens = counts["train"]["tokens"] if self.max_tokens else sum(c["tokens"] for c in counts.values())
        self.tokens += tokens
        self.text_bytes += sum(c["text_bytes"] for c in counts.values())
        if self.bar.disable:
            return
        if self.max_tokens is None and self.source_bytes and self.text_bytes:
            estimate = int(self.tokens * max(self.source_bytes / self.text_bytes, 1.0))
            self.bar.total = max(estimate, self.tokens)
        if reused:  # not tokenized now: keep it out of the rate
            self.bar.n += tokens
            self.bar.last_print_n = self.bar.n
            self.bar.start_t = self.bar._time()
            self.bar.refresh()
        else:
            self.bar.update(tokens)
        self.bar.set_postfix_str(f"shard {record.index + 1}{' (done before)' if reused else ''}", refresh=False)

    def close(self) -> None:
        self.bar.close()
