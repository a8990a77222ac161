"""Datasets: generators that write audio, label schemes that find it, and the manifest that describes it."""
