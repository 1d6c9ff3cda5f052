"""One module per ``expwatch`` subcommand (see ``app.cli``)."""
