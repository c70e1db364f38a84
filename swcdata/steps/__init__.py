"""The pipeline's steps, each a pure function over Arrow record tables with a typed config and a
pydantic report: `validate`, `dedup`, `audit`, `split`, `augment`."""
