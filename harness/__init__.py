"""The engine of the BLIP benchmark harness: registries, runner, results, leaderboards."""
