"""The data commands of `defectkit` (convert, split, augment, demo-data, …); the app root is `defectkit.cli`."""
