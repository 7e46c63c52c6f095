"""Amounts of money, in baisa (1 rial = 1,000 baisa)."""

# The largest fee anything accepts, 10,000 rial: far above any Sanad e-service fee, far below
# what rollup sums could overflow. The registry's catalogue and the batch path's history share it.
MAX_FEE_BAISA = 10_000_000
