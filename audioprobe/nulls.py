"""YAML's spellings of null, which Snakemake's --config passes into nested settings as strings."""

NULLS = ("null", "Null", "NULL", "~")


def null_hint(value, remedy: str = "turn it off in a --configfile") -> str:
    """For a setting that is the text of a YAML null ('null', '~'...), a note that --config read a nested null
    as that string, and ``remedy``; otherwise "". Used where a string is a valid type, so it is not coerced."""
    return (f" (--config reads a nested null as the string {value!r}: {remedy})"
            if isinstance(value, str) and value in NULLS else "")
