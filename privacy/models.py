"""privacy's own rows (break-glass grants and reviews, exports, erasures)."""
