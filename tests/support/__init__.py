"""What several test modules share: ``support.redis`` (a Redis on the virtual clock),
``support.hooks`` (a hook scenario against the mock server), ``support.auth`` (Basic auth),
``support.cli`` (the CLI against a mock server in a thread), ``support.snippets`` (the docs'
python blocks). Public names only."""
