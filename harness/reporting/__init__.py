"""Reporting: tables of results (Markdown, LaTeX, CSV, explain) and the HTML report."""
