"""Study 2, model metamers: listening-test packages for people and the analysis of their answers."""
