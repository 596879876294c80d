"""The market as plain objects, without mosaik: the DSO's and the homes' agents (`agents`) and
their set-up from a scenario (`setup`); the protocol's rules they follow (the dispatch cap, the
round schedule) are in `sim.protocol`. The co-simulation (`sim.cosim`) and the privacy experiment
(`sim.privacy`) both build on it; nothing here imports mosaik."""
