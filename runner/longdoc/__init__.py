"""Long documents that no candidate can read at once: split them on their structure, ask each
part, combine the partial answers (map-reduce). `split` cuts, `plan` sizes the chunks for a model
and routes each, `run` asks them and combines the notes."""

from .plan import SplitPlan, plan_split
from .run import SplitResult, run_split
from .split import Chunk, Piece, find_cut, pack, split_document, split_spans

__all__ = ["Chunk", "Piece", "SplitPlan", "SplitResult", "find_cut", "pack", "plan_split", "run_split",
           "split_document", "split_spans"]
