"""Reports: tables and plots built from run directories."""
