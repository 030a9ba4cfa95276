"""Leaderboards: results records -> Markdown board, PNG plot and index, one job per module.

:mod:`.spec` validates a config's ``leaderboard`` dict, :mod:`.aggregate` groups records
and reads their units, :mod:`.stats` runs the significance tests, :mod:`.markdown` renders
the board, :mod:`.plot` draws it and :mod:`.writer` writes the files atomically. The CLI
is :mod:`harness.leaderboard`.
"""
