"""`runner compare`: the same prompts on several models (or task routings), side by side.

`model` — what a comparison is made of; `run` — running it; `judge` — an optional ranking;
`log` — rebuilding one from the run log; `report` — what every renderer draws, decided once."""
