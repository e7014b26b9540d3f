"""The book wing: what runs and publishes the book (runner, run record, generated pages, browser
check, command line). Chapters never import it; it imports the science wing only to read what a
chapter declares (data sets, claims)."""
