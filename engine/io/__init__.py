"""Reading and writing the user's files: the one mesh loader (with a quality report), keypoint
sequences, handle sets and image sets. Every defect ends in one :class:`engine.core.errors.InputError`
naming the file and what was expected."""
