"""What each call of a split document is asked: read a part, merge notes, combine them."""

MAP_INSTRUCTIONS = (
    "The documents were too long to read at once, so they are read in {n} parts; this is part {i} "
    "of {n}, and notes from every part will be combined afterwards. From this part only, note what "
    "answers the question below: the relevant facts, figures and short quotes, each with its "
    "document name (and pages where given). If this part holds nothing relevant, say only: "
    "Nothing relevant in this part."
)
COMBINE_INSTRUCTIONS = (
    "The documents were too long to read at once, so they were read in {n} parts and notes were "
    "taken from each part for the question below. The notes follow, in document order. Answer the "
    "question from these notes alone: keep the document names (and pages) they cite, say where "
    "they disagree, and ignore parts with nothing relevant."
)
MERGE_INSTRUCTIONS = (
    "The documents were too long to read at once, so they were read in {n} parts and notes were "
    "taken from each part for the question below. Merge the notes that follow into one set of "
    "notes for that question: keep every relevant fact, figure and quote with its document name "
    "(and pages); drop repetition and parts with nothing relevant. Do not answer yet."
)
