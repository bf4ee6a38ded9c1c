"""Reports: figures, tables, the claims ledger, the paper's numbers and the results index."""
