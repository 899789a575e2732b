"""One module per subcommand. Keep module-level imports light: typer and the standard library."""
