"""``polarity``: movie-review sentiment as an objective-zoo task (a ``TaskSpec`` is plain data)."""

from zoo.benchmarks.tasks import Columns, TaskSpec

__version__ = "0.1.0"

POLARITY = TaskSpec(
    name="polarity",
    suite="reviews",
    title="Polarity",
    folder="polarity",
    format="tsv",
    files={"train": "train.tsv", "dev": "dev.tsv"},
    columns=Columns(text_a=0, label=1),  # sentence, label; the header fixes two fields per row
    labels=("neg", "pos"),  # label ids are positions in this tuple: f1 is the F1 of "pos"
    metrics=("accuracy", "f1"),
    description="Movie-review polarity (Pang & Lee, 2004): is the review positive?",
)

__all__ = ["POLARITY"]
