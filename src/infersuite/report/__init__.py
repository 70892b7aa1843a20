"""Reports: perf results → report.json (versioned), terminal tables, markdown."""
