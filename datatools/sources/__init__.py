"""Source readers: each lists `SampleSource` records for the conversion engine."""
