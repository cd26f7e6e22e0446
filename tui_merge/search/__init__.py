"""Looking for the best merge by making several and scoring each: ``sweep`` tries every combination of a few values."""
