"""The vocabulary every layer speaks: errors, the record schema and its Arrow layout, safe I/O, text
normalisation and record ids, the SWC catalogue, worker pools. Imports nothing else of swcdata."""
