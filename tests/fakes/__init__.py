"""In-process fake servers used by the tests (and runnable by hand)."""
