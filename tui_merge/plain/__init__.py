"""The plain wizard: the merge wizard as a sequence of prompts, for terminals that cannot draw a full-screen app."""
