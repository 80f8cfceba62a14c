"""Where job state lives: the `JobStore` interface and its implementations (see `base`)."""
