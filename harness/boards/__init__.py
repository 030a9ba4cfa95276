"""Leaderboards: results records -> Markdown board, PNG plot and index, one job per module.

:mod:`.spec` validates a config's ``leaderboard`` dict, :mod:`.aggregate` groups records
and reads their units, :mod:`.stats` runs the significance tests and bootstraps, :mod:`.chance`
gives chance levels, :mod:`.reference` matches the paper's table and ranks against it,
:mod:`.panels` computes what each plot panel shows, :mod:`.markdown` renders the board,
:mod:`.plot` draws it and :mod:`.writer` writes the files atomically. The CLI is
:mod:`harness.leaderboard`.
"""
