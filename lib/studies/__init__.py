"""Studies: the experiments behind each notebook (training arms, sampling, tables, claims)."""
