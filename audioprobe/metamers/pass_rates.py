"""Pass rates: the share of validated metamers per network and layer, over every network's validation table."""

from __future__ import annotations

import pandas as pd

from audioprobe.io.atomic import read_csv, write_csv


def pass_rates_step(*, validation_paths: list, out_csv) -> None:
    from audioprobe.metamers.validation import pass_rates

    table = pd.concat([read_csv(path) for path in validation_paths], ignore_index=True)
    write_csv(out_csv, pass_rates(table), config={"validations": [str(p) for p in validation_paths]})
