"""Tiny corpora that every stage accepts: a few lines of Macbeth, repeated."""

LINES = [
    "First Witch.",
    "When shall we three meet again",
    "In thunder, lightning, or in rain?",
    "Second Witch.",
    "When the hurlyburly's done,",
    "When the battle's lost and won.",
    "Third Witch.",
    "That will be ere the set of sun.",
    "",
]

# 2399 bytes: above the tiny params' validate.min_chars=2000, so it passes every stage.
TEXT = "\n".join(LINES * 12)
CORPUS = TEXT.encode()
