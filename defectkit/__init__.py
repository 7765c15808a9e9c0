"""defectkit's app root: the `defectkit` command line (`defectkit.cli`) over `datatools` and `training`."""
