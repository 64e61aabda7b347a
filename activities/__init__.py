"""Domain facades: every database write and external call of a run is an activity here."""
