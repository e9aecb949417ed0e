"""Moments: per-group count, mean and m2 in float64 (:mod:`~netfloc.moments.accumulator`), the groupings
accumulated in one pass (:mod:`~netfloc.moments.groupings`) and the streaming pass itself with its memory
plan (:mod:`~netfloc.moments.stream`)."""
