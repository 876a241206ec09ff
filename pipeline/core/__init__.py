"""What every stage shares: errors, paths, the params schema and reader, atomic files, the CLI
wrapper, URL redaction."""
