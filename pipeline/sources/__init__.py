"""How the download stage fetches: HTTP with caps and deadlines, and the package-index mirror."""
