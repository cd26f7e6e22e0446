"""The wizard's state and logic, free of any UI code so that it is tested headlessly."""
