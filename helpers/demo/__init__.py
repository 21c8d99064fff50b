"""The offline demo set: scores and songs, FluidSynth timbres, the set written in IRMAS's
layout."""
