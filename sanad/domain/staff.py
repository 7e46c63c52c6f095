"""A centre's staff counts."""

# The most staff, Omani or in total, a centre may have: far above any Sanad centre's (a few to
# a few dozen), far below what a governorate's sum of int32 figures could overflow (it would take
# 214,748 centres at the maximum). The registry refuses more; metrics counts a centre stored
# with more, before the registry had this rule, at the maximum.
MAX_STAFF = 10_000
