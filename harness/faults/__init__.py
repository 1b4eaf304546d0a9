"""The nemesis: a catalogue of faults (one module each under catalogue/) and timelines."""
