"""Audio Network Dissection: captions, summaries and neuron-concept matching."""
